#!/usr/bin/env bash
# README "Two LDS protocols": MAGIC and the baselines against single-model ground truth (each
# subset the run's own retraining, MATH.md E1) and against the literature's seed-averaged one
# (`--seeds 5`: each subset retrained with 5 trainer seeds, outputs averaged), 50 test margins,
# 5% drop, 100 subsets, on the digits MLP (the demo's recipe). MNIST10K=1 adds the MNIST MLP
# (examples/mnist10k_mlp.toml, needs ../shared/data) with 50 subsets.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" && cargo build --release --quiet
A=$root/target/release/attrib
OUT=${OUT:-runs/protocols}
mkdir -p "$OUT"
table() { # table NAME CONFIG SUBSETS
    local run=$OUT/$1
    "$A" --quiet train --config "$2" --out "$run" --force
    local files=()
    for m in magic ekfac trak tracin; do
        "$A" --quiet attribute --run "$run" --method "$m"
        files+=("$run/scores/$m.npy")
    done
    local list
    list=$(IFS=,; echo "${files[*]}")
    for k in 1 5; do
        echo "== $1, --seeds $k"
        "$A" lds --run "$run" --scores "$list" --drop 0.05 --subsets "$3" --seeds "$k"
    done
}
table digits examples/digits_mlp.toml 100
if [ "${MNIST10K:-0}" = 1 ]; then
    table mnist10k examples/mnist10k_mlp.toml 50
fi
