"""attrib from Python against the attrib CLI on the same run directory (issue 18).

The CLI binary is ``$ATTRIB_BIN`` or the workspace's ``target/release/attrib`` (``.ci/run`` builds
it with ``cargo test --release`` first).
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import attrib

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


def referee(demo, **kw):
    run = attrib.load(str(demo["dir"]))
    base = run.outputs("margin", "test")[demo["targets"]]
    args = dict(scores=demo["scores"], masks=demo["masks"], outputs=demo["outputs"], base=base)
    args.update(kw)
    return attrib.lds(**args)


def test_lds_equals_the_cli_to_the_bit(demo):
    got, want = referee(demo), demo["cli_lds"]
    assert got["lds"] == want["lds"]
    assert list(got["ci"]) == want["ci"]
    assert got["pearson"] == want["pearson"]
    assert got["slope"] == want["slope"]
    assert (got["subsets"], got["targets"]) == (want["subsets"], want["targets"])


def test_layouts_and_mask_types_give_the_same_answer(demo):
    a = referee(demo)
    b = referee(demo, scores=np.ascontiguousarray(demo["scores"].T), layout="train_targets")
    c = referee(demo, masks=demo["masks"].astype(bool))
    d = referee(demo, masks=demo["masks"].astype(np.float32))
    for other in (b, c, d):
        assert other["lds"] == a["lds"] and other["ci"] == a["ci"]
        assert np.array_equal(other["per_target"], a["per_target"])
    # Without base the result agrees to rounding (a constant shift of the predictions).
    e = attrib.lds(demo["scores"], demo["masks"], demo["outputs"])
    assert abs(e["lds"] - a["lds"]) < 1e-12


@pytest.mark.parametrize(
    "change, name",
    [
        (dict(scores=np.zeros((3,))), "scores"),
        (dict(masks=np.ones((20, 7))), "masks"),
        (dict(masks=np.full((20, 1), 2.0)), "masks"),
        (dict(outputs=np.zeros((19, 1))), "outputs"),
        (dict(layout="rows"), "layout"),
        (dict(base=np.zeros(3)), "base"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(demo, change, name):
    n = demo["scores"].shape[1]
    t = demo["scores"].shape[0]
    args = dict(scores=demo["scores"], masks=demo["masks"], outputs=demo["outputs"])
    if name == "masks" and change["masks"].shape[1] == 1:
        change = dict(masks=np.full((20, n), 2.0))
    if name == "outputs":
        change = dict(outputs=np.zeros((19, t)))
    args.update(change)
    with pytest.raises(ValueError, match=name):
        attrib.lds(**args)


def test_nan_is_refused(demo):
    s = demo["scores"].astype(np.float64)
    s[0, 3] = np.nan
    with pytest.raises(ValueError, match=r"scores: entry \[0, 3\] is NaN"):
        attrib.lds(s, demo["masks"], demo["outputs"])


def test_attribute_equals_the_cli_score_file(demo):
    run = attrib.load(str(demo["dir"]))
    scores = run.attribute("tracin")
    assert scores.dtype == np.float32
    assert np.array_equal(scores, demo["scores"])
    assert run.n_train == demo["scores"].shape[1]


def test_attribute_is_the_same_whatever_the_thread_count(demo):
    code = (
        "import attrib, sys, numpy as np;"
        f"s = attrib.load({str(demo['dir'])!r}).attribute('magic', targets=[0, 1, 2]);"
        "sys.stdout.buffer.write(s.tobytes())"
    )
    outs = []
    for threads in ("1", "2"):
        env = dict(os.environ, RAYON_NUM_THREADS=threads)
        p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True)
        assert p.returncode == 0, p.stderr.decode()
        outs.append(p.stdout)
    assert outs[0] == outs[1] and len(outs[0]) > 0


def test_errors_carry_attribs_messages(demo):
    with pytest.raises(ValueError, match="not a run directory"):
        attrib.load(str(demo["dir"] / "missing"))
    run = attrib.load(str(demo["dir"]))
    with pytest.raises(ValueError, match="method"):
        run.attribute("no-such-method")
    with pytest.raises(ValueError, match="targets"):
        run.attribute("tracin", targets=[10**6])
