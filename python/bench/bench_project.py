"""attrib.project + attrib.trak_scores vs the same in numpy, side by side in one process.

    python python/bench/bench_project.py            # N=6000 rows of P=26122 gradients, k=512
    N=60000 python python/bench/bench_project.py    # the issue's size (a 6.3 GB memory map)

The gradients are a float32 .npy memory map (written once to $TMPDIR). numpy materialises its
Rademacher projection (float32) and uses BLAS (float32 products); attrib generates its projection
block by block, never stores it, and computes in float64 (deterministic across thread counts).
"""
import os
import tempfile
import time

import numpy as np

import attrib

N, P, K, T = int(os.environ.get("N", 6000)), int(os.environ.get("P", 26122)), 512, 50
path = os.path.join(tempfile.gettempdir(), f"attrib-bench-grads-{N}x{P}.npy")
if not os.path.exists(path):
    g = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(N, P))
    r = np.random.default_rng(0)
    for s in range(0, N, 1000):
        g[s:s + 1000] = r.normal(size=(min(1000, N - s), P)).astype(np.float32)
    g.flush()
    del g
grads = np.load(path, mmap_mode="r")
targets = np.ascontiguousarray(grads[:T])
margins = np.random.default_rng(1).normal(size=N)


def with_attrib():
    phi = attrib.project(grads, K, seed=0)
    phi_t = attrib.project(targets, K, seed=0)
    return attrib.trak_scores(phi, phi_t, margins=margins)


def with_numpy():
    r = np.random.default_rng(0)
    proj = ((r.integers(0, 2, size=(P, K), dtype=np.int8) * 2 - 1) / np.sqrt(K)).astype(np.float32)
    phi = np.empty((N, K), dtype=np.float32)
    for s in range(0, N, 512):
        phi[s:s + 512] = grads[s:s + 512] @ proj
    phi_t = targets @ proj
    q = 1 / (1 + np.exp(margins))
    rbar = np.mean(q * (1 - q))
    kern = rbar * (phi.T.astype(np.float64) @ phi) + 1e-6 * np.eye(K)
    return (phi_t @ np.linalg.solve(kern, phi.T.astype(np.float64))) * q


for name, f in (("attrib", with_attrib), ("numpy", with_numpy)):
    t0 = time.perf_counter()
    s = f()
    dt = time.perf_counter() - t0
    print(f"{name:>7}: {dt:6.2f} s  {N / dt:8.0f} gradients/s  ({N} x {P} -> k = {K}, scores {s.shape})")
