"""attrib: predictive data attribution from Python.

Scores follow one sign convention (MATH.md, "Sign convention"): ``tau[t, i] = d f_t / d w_i`` for
data weights ``w``, so dropping a set ``D`` of training examples predicts
``f_t(S \\ D) ~ f_t(S) - sum_{i in D} tau[t, i]``.

- :func:`lds` referees any library's scores against retrained subsets (MATH.md E6), with the same
  code as ``attrib lds``.
- :func:`train` and :func:`load` make and open run directories of the ``attrib`` CLI (the same
  files and store: the two interoperate); :class:`Run` attributes, retrains, explains, selects
  and unlearns as the CLI commands do.
- :func:`project`, :func:`trak_scores` and :func:`tracin_scores` score gradients computed
  anywhere (e.g. with ``torch.func``).

Every computation releases the GIL; ``threads=`` runs it on that many workers (the results are
the same bits for any count). Bad arguments raise ``ValueError`` naming the argument; attrib's
own errors raise ``RuntimeError`` with its message.
"""

import hashlib
import json
import os
import pathlib

import numpy as np

from . import _attrib
from ._attrib import __version__, project, tracin_scores, trak_scores

__all__ = [
    "Run",
    "lds",
    "load",
    "train",
    "command",
    "project",
    "trak_scores",
    "tracin_scores",
    "__version__",
]


def lds(scores, masks, outputs, *, base=None, layout="targets_train"):
    """The linear datamodeling score of ``scores`` (MATH.md E6).

    Parameters
    ----------
    scores : array ``[targets, train]`` (``layout="targets_train"``, attrib's) or ``[train, targets]``
        (``layout="train_targets"``, as TRAK and dattri write them). The layout is never guessed.
    masks : array ``[subsets, train]`` of 0/1 or bool: 1 (True) = the example was KEPT in that subset.
    outputs : array ``[subsets, targets]``: each retrained model's output on each target.
    base : optional array ``[targets]``: the output of the model trained on all data.

    C-contiguous float64, float32 and bool arrays (``np.memmap`` included) are read in place.

    Returns
    -------
    dict with ``lds`` (mean over targets of the Spearman correlation between retrained and
    predicted outputs), ``ci`` (bootstrap 95% interval over targets), ``pearson``, ``slope``
    (retrained change per predicted change), ``subsets``, ``targets`` and ``per_target``.

    Raises
    ------
    ValueError naming the argument for wrong shapes, non-finite values or masks other than 0/1.
    """
    return _attrib.lds(scores, masks, outputs, base=base, layout=layout)


def _flags(kwargs):
    """``key=value`` keyword arguments as CLI flags: ``top_k=5`` -> ``--top-k 5``; ``True`` is a
    bare flag, ``False``/``None`` are left out, lists and ranges are joined with commas."""
    out = []
    for key, value in kwargs.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            out.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, (list, tuple, range)):
            out += [flag, ",".join(str(v) for v in value)]
        else:
            out += [flag, str(value)]
    return out


def command(*args, threads=None, **flags):
    """Runs ``attrib ARGS... --FLAG VALUE...`` in this process (``attrib slurm`` excepted) and
    returns its events: the ``--json`` wire format of the CLI (``attrib --help``, and the table in
    ``crates/cli/src/output.rs``), one dict each.

    Example: ``attrib.command("lds", run="runs/d", scores="runs/d/scores/magic.npy", drop=0.01)``
    """
    argv = [str(a) for a in args] + _flags(flags)
    return [json.loads(line) for line in _attrib.run_command(argv, threads)]


class Run(_attrib._Run):
    """A run directory written by ``attrib train`` or :func:`train`.

    The Rust half gives ``n_train``, ``n_params``, ``dir``, ``outputs``, ``gradients``,
    ``attribute`` and ``groundtruth``; the commands below run the CLI's own code on this run.
    """

    def lds(self, scores, targets=None, *, drop=0.01, subsets=100, output="margin",
            split="test", seed=0, seeds=1, threads=None):
        """The LDS (MATH.md E6) of ``scores`` ``[len(targets), n_train]`` (e.g. from
        :meth:`attribute`; ``targets`` default ``range(len(scores))``) against this run's ground
        truth (computed and cached first if missing), equal to ``attrib lds`` to the bit."""
        scores = np.asarray(scores)
        if scores.ndim != 2:
            raise ValueError(f"scores: expected a 2-D array [targets, train], got shape {scores.shape}")
        targets = list(range(scores.shape[0]) if targets is None else targets)
        if len(targets) != scores.shape[0]:
            raise ValueError(f"targets: {len(targets)} indices for {scores.shape[0]} score rows")
        gt = self.groundtruth(drop, subsets, output=output, split=split, seed=seed, seeds=seeds,
                              threads=threads)
        n_split = gt["base"].shape[0]
        if any(not 0 <= t < n_split for t in targets):
            raise ValueError(f"targets: indices must lie in 0..{n_split} (the {split} split)")
        return lds(scores, gt["masks"], np.ascontiguousarray(gt["outputs"][:, targets]),
                   base=gt["base"][targets])

    def command(self, name, *args, threads=None, **flags):
        """``attrib NAME --run DIR ARGS... --FLAG VALUE...`` on this run; returns its events."""
        return command(name, "--run", self.dir, *args, threads=threads, **flags)

    def explain(self, threads=None, **flags):
        """``attrib explain --run DIR ...``: the ``explanation`` (and with ``verify=True`` the
        ``verification``) events, one dict per target. Example: ``run.explain(targets="0..3",
        method="magic", verify=True)``."""
        return [e for e in self.command("explain", threads=threads, **flags)
                if e["type"] in ("explanation", "verification")]

    def select(self, threads=None, **flags):
        """``attrib select --run DIR ...``: one ``selection`` event per row, each verified by
        retraining."""
        return [e for e in self.command("select", threads=threads, **flags) if e["type"] == "selection"]

    def unlearn(self, threads=None, **flags):
        """``attrib unlearn --run DIR ...``: the ``unlearn`` events."""
        return [e for e in self.command("unlearn", threads=threads, **flags) if e["type"] == "unlearn"]

    def poison(self, threads=None, **flags):
        """``attrib poison --run DIR ...``: one ``poison`` event per budget and attack."""
        return [e for e in self.command("poison", threads=threads, **flags) if e["type"] == "poison"]


def load(dir):
    """Opens the run directory ``dir`` (written by ``attrib train`` or :func:`train`)."""
    return Run(str(dir))


def _save_input(out, name, array, dtype):
    """Saves ``array`` as ``OUT/inputs/NAME-HASH.npy`` (content-addressed: another run's arrays
    are never overwritten) by atomic rename; returns the path."""
    a = np.ascontiguousarray(array, dtype=dtype)
    digest = hashlib.sha256(a.tobytes() + str(a.shape).encode() + a.dtype.str.encode()).hexdigest()
    folder = pathlib.Path(out) / "inputs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{digest[:16]}.npy"
    if not path.exists():
        tmp = folder / f".{path.name}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            np.save(f, a)
        os.replace(tmp, path)
    return path.resolve()


def train(config, out, *, X=None, y=None, force=False, threads=None):
    """Trains a run into the folder ``out`` as ``attrib train --config FILE --out OUT`` does and
    returns it as a :class:`Run`.

    ``config`` is a TOML file path or a dict of the same tables (``{"model": {"kind": "mlp", ...},
    "optim": {...}, "train": {...}, "data": {...}}``; relative paths against the current folder).
    ``X`` (``[n, ...]`` features) and ``y`` (``[n]`` labels, integer classes or float targets)
    replace the config's data source: they are saved in ``OUT/inputs/`` and read as a ``npy``
    source, the rest of ``[data]`` (test fraction, standardisation, seeds) applies as written.
    """
    kw = dict(force=force, threads=threads)
    if X is not None:
        kw["x_path"] = str(_save_input(out, "x", X, np.float32))
        if y is not None:
            y = np.asarray(y)
            dtype = np.int64 if np.issubdtype(y.dtype, np.integer) else np.float32
            kw["y_path"] = str(_save_input(out, "y", y, dtype))
    elif y is not None:
        raise ValueError("y: give X with y (the features and their labels)")
    if isinstance(config, dict):
        _attrib.train(str(out), config_json=json.dumps(config), base=os.getcwd(), **kw)
    else:
        _attrib.train(str(out), config_path=str(config), **kw)
    return load(out)
