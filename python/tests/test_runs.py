"""attrib's own runs from Python: train, ground truth, LDS and commands equal the CLI's (issue 18)."""

import json
import numpy as np
import pytest

import attrib
from conftest import cli

# conftest.RECIPE as a dict.
RECIPE = {
    "data": {"source": "breast_cancer"},
    "model": {"kind": "logistic"},
    "optim": {"kind": "sgd", "lr": 0.1, "momentum": 0.9},
    "train": {"epochs": 3, "batch_size": 64},
}


def test_train_from_a_dict_is_the_cli_run(demo, tmp_path):
    run = attrib.train(RECIPE, tmp_path / "py")
    assert (tmp_path / "py" / "params.safetensors").read_bytes() == (
        demo["dir"] / "params.safetensors"
    ).read_bytes()
    assert run.n_train == demo["scores"].shape[1]
    # The run directory is the CLI's: the binary reads it.
    out = cli(tmp_path, "--json", "evaluate", "--run", "py")
    assert json.loads(out.splitlines()[-1])["type"] == "evaluation"


def test_train_from_arrays_is_the_cli_run_on_npy_files(tmp_path):
    r = np.random.default_rng(0)
    X = r.normal(size=(240, 6)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64)
    cfg = {
        "model": {"kind": "mlp", "hidden": [8]},
        "optim": {"kind": "sgd", "lr": 0.1},
        "train": {"epochs": 2, "batch_size": 32},
    }
    run = attrib.train(cfg, tmp_path / "py", X=X, y=y)
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", y)
    (tmp_path / "c.toml").write_text(
        '[data]\nsource = "npy"\npath = "x.npy"\nlabels_path = "y.npy"\n'
        '[model]\nkind = "mlp"\nhidden = [8]\n[optim]\nkind = "sgd"\nlr = 0.1\n'
        "[train]\nepochs = 2\nbatch_size = 32\n"
    )
    cli(tmp_path, "--quiet", "train", "--config", "c.toml", "--out", "c")
    assert (tmp_path / "py" / "params.safetensors").read_bytes() == (
        tmp_path / "c" / "params.safetensors"
    ).read_bytes()
    Xs, ys = run.dataset("train")
    assert Xs.dtype == np.float32 and Xs.shape == (192, 6) and ys.shape == (192,)
    # Training again with the same arrays is the same run; other arrays are refused.
    attrib.train(cfg, tmp_path / "py", X=X, y=y)
    with pytest.raises(RuntimeError, match="different configuration"):
        attrib.train(cfg, tmp_path / "py", X=X[:200], y=y[:200])


def test_bad_configs_raise_value_errors(tmp_path):
    with pytest.raises(ValueError, match="config"):
        attrib.train({"model": {"kind": "no-such-model"}}, tmp_path / "x")
    with pytest.raises(ValueError, match="config"):
        attrib.train(str(tmp_path / "missing.toml"), tmp_path / "y")
    with pytest.raises(ValueError, match="y"):
        attrib.train({}, tmp_path / "z", y=np.zeros(3))


def test_groundtruth_and_lds_equal_the_cli(demo):
    run = attrib.load(demo["dir"])
    gt = run.groundtruth(drop=0.1, subsets=20)
    assert gt["masks"].dtype == bool
    assert np.array_equal(gt["masks"], demo["masks"].astype(bool))
    assert np.array_equal(gt["outputs"][:, demo["targets"]], demo["outputs"])
    got, want = run.lds(demo["scores"], demo["targets"], drop=0.1, subsets=20), demo["cli_lds"]
    assert (got["lds"], list(got["ci"]), got["pearson"], got["slope"]) == (
        want["lds"], want["ci"], want["pearson"], want["slope"]
    )


def test_commands_return_the_clis_events(demo):
    run = attrib.load(demo["dir"])
    ours = run.explain(targets="0..2", scores=str(demo["dir"] / "scores" / "t.npy"))
    lines = cli(demo["dir"].parent, "--json", "explain", "--run", "r", "--targets", "0..2",
                "--scores", "r/scores/t.npy").splitlines()
    theirs = [json.loads(x) for x in lines]
    theirs = [e for e in theirs if e["type"] == "explanation"]
    assert len(ours) == 2 and ours == theirs
    with pytest.raises(RuntimeError, match="slurm"):
        attrib.command("slurm", "--run", str(demo["dir"]), "--", "groundtruth")
    with pytest.raises(RuntimeError, match="unexpected argument"):
        attrib.command("lds", no_such_flag=1)
