#!/usr/bin/env bash
# Reproduces README "Act on attributions", data selection: the digits MLP with 20% of its
# training labels flipped (examples/digits_mlp_noisy.toml), one-shot selection keeping 80% by
# MAGIC, TracIn, if-cg and TRAK scores of the validation losses, 5 random subsets of the same
# size, the oracle that drops exactly the flipped examples, and 3 steps of metagradient descent at
# each step size c of STEP_SIZES (default "5 10"; the c = 0.5 row: STEPS=1 STEP_SIZES=0.5).
# About 10 minutes on 2 cores: if-cg 4 minutes (IFCG=0 leaves it out), MAGIC 45 s per sweep (one
# for the one-shot scores, one per MGD step).
#
# MNIST10K=1 adds examples/mnist10k_mlp.toml with the same noise and a 600-image validation
# split (needs ../shared/data; about 3.5 minutes per MAGIC sweep of the 599 validation losses on
# 2 cores, 30 minutes for the table with IFCG=0 STEP_SIZES=5).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
B=target/release/attrib
OUT=${OUT:-runs/select}
STEPS=${STEPS:-3}
STEP_SIZES=${STEP_SIZES:-5 10}
mkdir -p "$OUT"

table() { # table NAME CONFIG
  local run="$OUT/$1"
  $B --quiet train --config "$2" --out "$run" --force
  local nval
  nval=$($B evaluate --run "$run" --split val | awk '/^examples/ {print $2}')
  local methods="magic tracin trak"
  if [ "${IFCG:-1}" = 1 ]; then methods="magic tracin if-cg trak"; fi
  local files=()
  for m in $methods; do
    $B --quiet attribute --run "$run" --method "$m" --split val --output loss \
      --targets "0..$nval" --name "$m-val"
    files+=("$run/scores/$m-val.npy")
  done
  local list
  list=$(IFS=,; echo "${files[*]}")
  $B select --run "$run" --scores "$list" --keep 0.8 --random 5 | tee "$OUT/$1-oneshot.txt"
  for c in $STEP_SIZES; do
    $B select --run "$run" --steps "$STEPS" --step-size "$c" | tee "$OUT/$1-mgd-c$c.txt"
  done
}

table digits examples/digits_mlp_noisy.toml
if [ "${MNIST10K:-0}" = 1 ]; then
  sed -e 's/^max_test = 1000/max_test = 1000\nval_fraction = 0.01\nlabel_noise = { fraction = 0.2, seed = 0 }/' \
      -e "s#path = \"../../shared/data/mnist\"#path = \"$(pwd)/../shared/data/mnist\"#" \
      examples/mnist10k_mlp.toml > "$OUT/mnist10k.toml"
  table mnist10k "$OUT/mnist10k.toml"
fi
