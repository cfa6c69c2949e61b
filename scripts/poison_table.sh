#!/usr/bin/env bash
# Reproduces README "Poisoning": test accuracy and loss after poisoning 1%, 2.5% and 5% of the
# training set, attributed label flips and input-metagradient feature attacks against random
# flips and random input noise of the same budget. Digits MLP: about 2 minutes on 2 cores;
# MNIST10K=1 adds examples/mnist10k_mlp.toml with a validation split (needs ../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
B=target/release/attrib
OUT=${OUT:-runs/poison}
mkdir -p "$OUT"
$B --quiet train --config examples/digits_mlp_val.toml --out "$OUT/digits" --force
$B poison --run "$OUT/digits" --budget 0.01,0.025,0.05 --steps 5 | tee "$OUT/digits.txt"
if [ "${MNIST10K:-0}" = 1 ]; then
  # The GGDA recipe with 10% of the training images held out for validation.
  sed -e 's/^max_test = 1000/max_test = 1000\nval_fraction = 0.1/' \
      -e "s#path = \"../../shared/data/mnist\"#path = \"$(pwd)/../shared/data/mnist\"#" \
      examples/mnist10k_mlp.toml > "$OUT/mnist10k.toml"
  $B --quiet train --config "$OUT/mnist10k.toml" --out "$OUT/mnist10k" --force
  $B poison --run "$OUT/mnist10k" --budget 0.01,0.025,0.05 --steps 3 | tee "$OUT/mnist10k.txt"
fi
