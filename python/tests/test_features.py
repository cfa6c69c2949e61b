"""Bring your own gradients: projections, TRAK and TracIn from features (issue 18, item 4)."""

import numpy as np
import pytest

import attrib


def test_project_is_the_product_with_its_matrix_and_deterministic(tmp_path):
    r = np.random.default_rng(1)
    p, k = 700, 40
    g = r.normal(size=(1100, p)).astype(np.float32)
    # Projecting the identity gives the projection matrix itself: a closed-form check of the
    # blockwise product (3 blocks of rows, 1 block of parameters).
    P = attrib.project(np.eye(p), k, seed=3)
    assert P.shape == (p, k) and set(np.unique(np.abs(P))) == {1 / np.sqrt(k)}
    got = attrib.project(g, k, seed=3)
    want = g.astype(np.float64) @ P
    assert np.max(np.abs(got - want)) < 1e-10 * np.max(np.abs(want))
    # Same bits whatever the thread count, from a memory map or from memory.
    path = tmp_path / "g.npy"
    np.save(path, g)
    mm = np.load(path, mmap_mode="r")
    one = attrib.project(g, k, seed=3, threads=1)
    assert np.array_equal(one, attrib.project(mm, k, seed=3, threads=2))
    assert np.array_equal(one, got)
    assert not np.array_equal(one, attrib.project(g, k, seed=4))
    gauss = attrib.project(np.eye(p), k, seed=3, kind="gaussian")
    assert abs(np.var(gauss) * k - 1) < 0.05


def test_trak_from_features_equals_attribs_trak(demo):
    run = attrib.load(demo["dir"])
    targets, k = demo["targets"], 16
    train = attrib.project(run.gradients("train"), k, seed=5)
    target = attrib.project(run.gradients("test", targets, output="margin"), k, seed=5)
    ours = attrib.trak_scores(train, target, margins=run.outputs("margin", "train"))
    theirs = run.attribute("trak", targets=targets, k=k, seed=5)
    assert np.array_equal(ours.astype(np.float32), theirs)
    # Two models: the ensemble average with separately averaged Q weights.
    two = attrib.trak_scores([train, train], [target, target], margins=[run.outputs("margin", "train")] * 2)
    assert np.allclose(two, ours, rtol=1e-12, atol=0)


def test_trak_without_margins_is_kernel_regression():
    r = np.random.default_rng(2)
    phi, phi_t = r.normal(size=(50, 4)), r.normal(size=(3, 4))
    got = attrib.trak_scores(phi, phi_t, damping=0.0)
    want = phi_t @ np.linalg.solve(phi.T @ phi, phi.T)
    assert np.allclose(got, want, rtol=1e-10, atol=1e-12)


def test_tracin_scores_are_the_weighted_dot_products():
    r = np.random.default_rng(3)
    a, b = [r.normal(size=(1030, 7)) for _ in range(2)], [r.normal(size=(4, 7)) for _ in range(2)]
    got = attrib.tracin_scores(a, b, weights=[0.5, 2.0], threads=1)
    want = -(0.5 * b[0] @ a[0].T + 2.0 * b[1] @ a[1].T)
    assert np.allclose(got, want, rtol=1e-12, atol=1e-12)
    assert np.array_equal(got, attrib.tracin_scores(a, b, weights=[0.5, 2.0], threads=2))


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: attrib.project(np.full((3, 4), np.nan), 2), "grads"),
        (lambda: attrib.project(np.zeros((3, 4)), 0), "k"),
        (lambda: attrib.project(np.zeros(3), 2), "grads"),
        (lambda: attrib.project(np.zeros((3, 4)), 2, kind="sparse"), "kind"),
        (lambda: attrib.trak_scores([np.zeros((5, 2))], []), "target_features"),
        (lambda: attrib.trak_scores(np.ones((5, 2)), np.ones((1, 3))), "target_features"),
        (lambda: attrib.trak_scores(np.ones((5, 2)), np.ones((1, 2)), margins=np.ones(4)), "margins"),
        (lambda: attrib.trak_scores(np.ones((5, 2)), np.ones((1, 2)), damping=-1.0), "damping"),
        (lambda: attrib.tracin_scores(np.ones((5, 2)), np.ones((1, 2)), weights=[1, 2]), "weights"),
    ],
)
def test_bad_feature_arguments_raise_value_errors_naming_them(call, name):
    with pytest.raises(ValueError, match=name):
        call()
