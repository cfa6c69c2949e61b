"""attrib from Python against the attrib CLI on the same run directory (issue 18).

The CLI binary is ``$ATTRIB_BIN`` or the workspace's ``target/release/attrib`` (``.ci/run`` builds
it with ``cargo test --release`` first).
"""

import os
import subprocess
import sys

import numpy as np
import pytest

import attrib

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
