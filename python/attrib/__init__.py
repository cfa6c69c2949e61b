"""attrib: predictive data attribution from Python.

Scores follow one sign convention (MATH.md, "Sign convention"): ``tau[t, i] = d f_t / d w_i`` for
data weights ``w``, so dropping a set ``D`` of training examples predicts
``f_t(S \\ D) ~ f_t(S) - sum_{i in D} tau[t, i]``.

- :func:`lds` referees any library's scores against retrained subsets (MATH.md E6), with the same
  code as ``attrib lds``.
- :func:`load` opens a run directory of the ``attrib`` CLI; :meth:`Run.attribute` computes scores as
  ``attrib attribute`` does.
"""

from ._attrib import Run, __version__, load
from ._attrib import lds as _lds

__all__ = ["Run", "lds", "load", "__version__"]


def lds(scores, masks, outputs, *, base=None, layout="targets_train"):
    """The linear datamodeling score of ``scores`` (MATH.md E6).

    Parameters
    ----------
    scores : array ``[targets, train]`` (``layout="targets_train"``, attrib's) or ``[train, targets]``
        (``layout="train_targets"``, as TRAK and dattri write them). The layout is never guessed.
    masks : array ``[subsets, train]`` of 0/1 or bool: 1 (True) = the example was KEPT in that subset.
    outputs : array ``[subsets, targets]``: each retrained model's output on each target.
    base : optional array ``[targets]``: the output of the model trained on all data.

    Returns
    -------
    dict with ``lds`` (mean over targets of the Spearman correlation between retrained and
    predicted outputs), ``ci`` (bootstrap 95% interval over targets), ``pearson``, ``slope``
    (retrained change per predicted change), ``subsets``, ``targets`` and ``per_target``.

    Raises
    ------
    ValueError naming the argument for wrong shapes, non-finite values or masks other than 0/1.
    """
    return _lds(scores, masks, outputs, base=base, layout=layout)
