from os import PathLike
from typing import Any, Optional, Sequence, TypedDict, Union

import numpy as np
import numpy.typing as npt

__version__: str

Path = Union[str, PathLike[str]]
Features = Union[npt.ArrayLike, Sequence[npt.ArrayLike]]

class LdsResult(TypedDict):
    lds: float
    ci: tuple[float, float]
    pearson: float
    slope: float
    subsets: int
    targets: int
    per_target: npt.NDArray[np.float64]

class GroundTruth(TypedDict):
    masks: npt.NDArray[np.bool_]
    outputs: npt.NDArray[np.float64]
    base: npt.NDArray[np.float64]

def lds(
    scores: npt.ArrayLike,
    masks: npt.ArrayLike,
    outputs: npt.ArrayLike,
    *,
    base: Optional[npt.ArrayLike] = None,
    layout: str = "targets_train",
) -> LdsResult:
    """The LDS of `scores` against retrained subsets (MATH.md E6); see attrib.lds's docstring."""

def command(*args: Any, threads: Optional[int] = None, **flags: Any) -> list[dict[str, Any]]:
    """`attrib ARGS... --FLAG VALUE...` in-process; returns the CLI's --json events."""

def project(
    grads: npt.ArrayLike,
    k: int,
    *,
    seed: int = 0,
    kind: str = "rademacher",
    member: int = 0,
    threads: Optional[int] = None,
) -> npt.NDArray[np.float64]:
    """`grads @ P` for TRAK's seeded random projection P ([p, k]), block by block (MATH.md E4)."""

def trak_scores(
    train_features: Features,
    target_features: Features,
    *,
    margins: Optional[Features] = None,
    damping: Union[str, float, None] = None,
    threads: Optional[int] = None,
) -> npt.NDArray[np.float64]:
    """TRAK scores tau[target, train] from projected features, one array or a list per model (E4)."""

def tracin_scores(
    train_features: Features,
    target_features: Features,
    *,
    weights: Optional[Sequence[float]] = None,
    threads: Optional[int] = None,
) -> npt.NDArray[np.float64]:
    """TracIn scores -sum_c w_c <target_c, train_c> over checkpoints (MATH.md E4)."""

class Run:
    """A run directory written by `attrib train` or `attrib.train`."""

    def __init__(self, dir: Path) -> None: ...
    @property
    def n_train(self) -> int: ...
    @property
    def n_params(self) -> int: ...
    @property
    def dir(self) -> str: ...
    def outputs(self, output: str = "margin", split: str = "test") -> npt.NDArray[np.float64]:
        """f(S): the trained model's output on every example of `split`."""
    def dataset(self, split: str = "train") -> tuple[npt.NDArray[Any], Optional[npt.NDArray[Any]]]:
        """(X, y) of `split` as the model sees them."""
    def gradients(
        self, split: str = "train", indices: Optional[Sequence[int]] = None, output: Optional[str] = None
    ) -> npt.NDArray[np.float64]:
        """Per-example gradients [examples, parameters] at the trained parameters."""
    def attribute(
        self,
        method: str,
        targets: Optional[Sequence[int]] = None,
        output: str = "margin",
        split: str = "test",
        threads: Optional[int] = None,
        **options: Any,
    ) -> npt.NDArray[np.float32]:
        """Scores tau[target, train] as `attrib attribute` writes them (float32)."""
    def groundtruth(
        self,
        drop: float = 0.01,
        subsets: int = 100,
        *,
        output: str = "margin",
        split: str = "test",
        seed: int = 0,
        seeds: int = 1,
        threads: Optional[int] = None,
    ) -> GroundTruth:
        """The retrained subsets of `attrib groundtruth` (cached in the run)."""
    def lds(
        self,
        scores: npt.ArrayLike,
        targets: Optional[Sequence[int]] = None,
        *,
        drop: float = 0.01,
        subsets: int = 100,
        output: str = "margin",
        split: str = "test",
        seed: int = 0,
        seeds: int = 1,
        threads: Optional[int] = None,
    ) -> LdsResult:
        """The LDS of `scores` against this run's ground truth, equal to `attrib lds`."""
    def command(self, name: str, *args: Any, threads: Optional[int] = None, **flags: Any) -> list[dict[str, Any]]:
        """`attrib NAME --run DIR ...` in-process; returns its events."""
    def explain(self, threads: Optional[int] = None, **flags: Any) -> list[dict[str, Any]]: ...
    def select(self, threads: Optional[int] = None, **flags: Any) -> list[dict[str, Any]]: ...
    def unlearn(self, threads: Optional[int] = None, **flags: Any) -> list[dict[str, Any]]: ...
    def poison(self, threads: Optional[int] = None, **flags: Any) -> list[dict[str, Any]]: ...

def load(dir: Path) -> Run:
    """Opens a run directory of the attrib CLI."""

def train(
    config: Union[Path, dict[str, Any]],
    out: Path,
    *,
    X: Optional[npt.ArrayLike] = None,
    y: Optional[npt.ArrayLike] = None,
    force: bool = False,
    threads: Optional[int] = None,
) -> Run:
    """Trains a run as `attrib train` does (a TOML path or a dict; arrays in place of files)."""
