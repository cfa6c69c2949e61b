"""Shared fixtures: the attrib CLI binary and a small run made with it (issue 18).

The CLI binary is ``$ATTRIB_BIN`` or the workspace's ``target/release/attrib`` (``.ci/run`` builds
it with ``cargo test --release`` first).
"""

import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("ATTRIB_BIN", str(ROOT / "target" / "release" / "attrib"))

RECIPE = """
[data]
source = "breast_cancer"
[model]
kind = "logistic"
[optim]
kind = "sgd"
lr = 0.1
momentum = 0.9
[train]
epochs = 3
batch_size = 64
"""


def cli(cwd, *args):
    out = subprocess.run([BIN, *args], cwd=cwd, capture_output=True, text=True)
    assert out.returncode == 0, f"attrib {args} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """A trained run with 20 retrained subsets, TracIn scores and the CLI's LDS of them."""
    assert os.path.exists(BIN), f"no attrib binary at {BIN}: run `cargo build --release` first"
    d = tmp_path_factory.mktemp("run")
    (d / "r.toml").write_text(RECIPE)
    cli(d, "--quiet", "train", "--config", "r.toml", "--out", "r")
    cli(d, "--quiet", "groundtruth", "--run", "r", "--drop", "0.1", "--subsets", "20")
    cli(d, "--quiet", "attribute", "--run", "r", "--method", "tracin", "--name", "t")
    lines = cli(
        d, "--json", "lds", "--run", "r", "--scores", "r/scores/t.npy", "--drop", "0.1",
        "--subsets", "20",
    ).splitlines()
    event = [json.loads(x) for x in lines if json.loads(x).get("type") == "lds"][0]
    run_dir = d / "r"
    sidecar = json.loads((run_dir / "scores" / "t.json").read_text())
    gt_dir = run_dir / "groundtruth" / "drop-0.1000-m20-s0-margin-test"
    entries = sorted(gt_dir.glob("subset_*.json"))
    assert len(entries) == 20
    n = sidecar["n_train"]
    masks = np.ones((20, n), dtype=np.int64)
    outputs = []
    for j, path in enumerate(entries):
        e = json.loads(path.read_text())
        masks[j, e["dropped"]] = 0
        outputs.append(e["outputs"])
    targets = sidecar["targets"]
    return {
        "dir": run_dir,
        "cli_lds": event,
        "scores": np.load(run_dir / "scores" / "t.npy"),
        "masks": masks,
        "outputs": np.array(outputs, dtype=np.float64)[:, targets],
        "targets": targets,
    }


