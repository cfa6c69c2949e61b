from typing import Any, Optional, Sequence, TypedDict

import numpy as np
import numpy.typing as npt

__version__: str

class LdsResult(TypedDict):
    lds: float
    ci: tuple[float, float]
    pearson: float
    slope: float
    subsets: int
    targets: int
    per_target: npt.NDArray[np.float64]

def lds(
    scores: npt.ArrayLike,
    masks: npt.ArrayLike,
    outputs: npt.ArrayLike,
    *,
    base: Optional[npt.ArrayLike] = None,
    layout: str = "targets_train",
) -> LdsResult:
    """The LDS of `scores` against retrained subsets (MATH.md E6); see attrib.lds's docstring."""

class Run:
    """A run directory written by `attrib train`."""

    @property
    def n_train(self) -> int: ...
    @property
    def dir(self) -> str: ...
    def outputs(self, output: str = "margin", split: str = "test") -> npt.NDArray[np.float64]:
        """f(S): the trained model's output on every example of `split`."""
    def attribute(
        self,
        method: str,
        targets: Optional[Sequence[int]] = None,
        output: str = "margin",
        split: str = "test",
        **options: Any,
    ) -> npt.NDArray[np.float32]:
        """Scores tau[target, train] as `attrib attribute` writes them (float32)."""

def load(dir: str) -> Run:
    """Opens a run directory of the attrib CLI."""
