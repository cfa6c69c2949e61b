#!/usr/bin/env python3
"""How far does a metagradient's first-order prediction hold as a subset's weight falls to 0?

For random subsets D (a fraction of the training set) and t in a few steps up to 1, retrains the
run's config with the weights of D lowered from 1 to 1 - t, and compares each target's actual
change with the prediction -t * sum_{i in D} tau_i from a score file (MATH.md E1). t = 1 is
dropping D, the LDS setting; small t is where the exact derivative must agree. Prints, per t, the
least-squares slope of actual on predicted, their Pearson r and the median |actual| / |predicted|.

    python3 scripts/weight_response.py --run runs/moby-gpt --config examples/moby_gpt.toml \\
        --scores runs/moby-gpt/scores/magic@0-4.npy

Needs numpy and a release build of attrib (--attrib, default target/release/attrib). The run must
have been trained from --config with unit weights. Not run by CI.
"""
import argparse
import json
import os
import re
import subprocess
import tempfile

import numpy as np


def values(attrib, run, scores, targets):
    """The targets' outputs in `run`, read back through `attrib explain --json`."""
    out = subprocess.run(
        [attrib, "explain", "--json", "--run", run, "--scores", scores,
         "--targets", f"0..{targets}", "--top", "1"],
        capture_output=True, text=True, check=True).stdout
    v = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    v = [x["value"] for x in v if x.get("type") == "explanation"]
    assert len(v) == targets, out[:300]
    return np.array(v)


def scores_for(attrib, run, scores):
    """A copy of the score file that `explain` accepts for a retrained run (same targets)."""
    err = subprocess.run([attrib, "explain", "--run", run, "--scores", scores, "--target", "0"],
                         capture_output=True, text=True).stderr
    m = re.search(r"computed for run (\S+) but this run is (\S+);", err)
    os.makedirs(f"{run}/scores", exist_ok=True)
    dst = f"{run}/scores/{os.path.basename(scores)}"
    np.save(dst, np.load(scores))
    meta = open(scores[:-4] + ".json").read()
    open(dst[:-4] + ".json", "w").write(meta.replace(m.group(1), m.group(2)) if m else meta)
    return dst


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--scores", required=True)
    ap.add_argument("--attrib", default="target/release/attrib")
    ap.add_argument("--fraction", type=float, default=0.01)
    ap.add_argument("--subsets", type=int, default=8)
    ap.add_argument("--steps", default="0.05,0.2,0.5,1.0")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    tau = np.load(a.scores)
    targets, n = tau.shape
    cfg_dir = os.path.dirname(os.path.abspath(a.config))
    # Data and initial-parameter paths are relative to the config: make them absolute so that
    # copies live anywhere.
    cfg = re.sub(r'^(path|init_from) = "([^"/][^"]*)"',
                 lambda m: f'{m.group(1)} = "{os.path.join(cfg_dir, m.group(2))}"',
                 open(a.config).read(), flags=re.M)
    f0 = values(a.attrib, a.run, a.scores, targets)
    rng = np.random.default_rng(a.seed)
    steps = [float(t) for t in a.steps.split(",")]
    actual = {t: [] for t in steps}
    predicted = {t: [] for t in steps}
    with tempfile.TemporaryDirectory() as tmp:
        for s in range(a.subsets):
            dropped = rng.choice(n, size=max(1, round(a.fraction * n)), replace=False)
            for t in steps:
                w = np.ones(n)
                w[dropped] = 1 - t
                np.savetxt(f"{tmp}/w.csv", w)
                open(f"{tmp}/run.toml", "w").write(
                    cfg.replace("[train]\n", f'[train]\nweights = "{tmp}/w.csv"\n', 1))
                run = f"{tmp}/run-{s}-{t}"
                subprocess.run([a.attrib, "--quiet", "train", "--config", f"{tmp}/run.toml",
                                "--out", run], check=True, capture_output=True)
                got = values(a.attrib, run, scores_for(a.attrib, run, a.scores), targets)
                actual[t].append(got - f0)
                predicted[t].append(-t * tau[:, dropped].sum(axis=1))
    for t in steps:
        x, p = np.ravel(actual[t]), np.ravel(predicted[t])
        print(f"t={t}: {x.size} (subset, target) pairs, slope {(x @ p) / (p @ p):.3f}, "
              f"Pearson r {np.corrcoef(x, p)[0, 1]:.3f}, median |actual|/|predicted| "
              f"{np.median(np.abs(x) / np.abs(p)):.3f}, median |predicted| {np.median(np.abs(p)):.2e}")


if __name__ == "__main__":
    main()
