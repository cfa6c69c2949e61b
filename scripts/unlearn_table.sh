#!/usr/bin/env bash
# Reproduces README "Act on attributions", unlearning: the demo recipe (examples/digits_mlp.toml)
# forgets random 1% (three sets), random 5% (three sets), half of one class and the largest
# Grad-K-Means cluster (K = 144); `attrib unlearn --verify` compares the JVP model, "no change",
# gradient ascent and the MAGIC output prediction with a retraining without each set.
# About 2 minutes on 2 cores (one MAGIC sweep of the 359 test margins, then a few seconds per set).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
B=target/release/attrib
OUT=${OUT:-runs/unlearn}
R="$OUT/digits"
mkdir -p "$OUT"
$B --quiet train --config examples/digits_mlp.toml --out "$R" --force
NTEST=$($B evaluate --run "$R" | awk '/^examples/ {print $2}')
$B --quiet attribute --run "$R" --method magic --targets "0..$NTEST" --name magic-test
$B --quiet group --run "$R" --method random --groups 100 --seed 0   # ~1% each
$B --quiet group --run "$R" --method random --groups 20 --seed 0    # ~5% each
$B --quiet group --run "$R" --method class --groups 10
$B --quiet group --run "$R" --method grad-kmeans --groups 144 --seed 0
G="$R/groups"

forget() { # forget NAME GROUPING IDS...: unlearn the listed groups of GROUPING
  local name=$1 grouping=$2
  shift 2
  printf 'group\n' > "$OUT/$name.csv"
  printf '%s\n' "$@" >> "$OUT/$name.csv"
  echo "== $name"
  $B unlearn --run "$R" --groups "$grouping" --forget "$OUT/$name.csv" --verify \
    --scores "$R/scores/magic-test.npy" --out "$OUT/unlearned-$name"
}

for k in 0 1 2; do forget "random1pct-$k" "$G/random-k100.csv" "$k"; done
for k in 0 1 2; do forget "random5pct-$k" "$G/random-k20.csv" "$k"; done
# The largest Grad-K-Means cluster (lowest id among ties).
big=$(awk -F, 'NR > 1 {c[$2]++} END {b = -1; for (g in c) if (c[g] > b || (c[g] == b && g + 0 < id)) {b = c[g]; id = g + 0}; print id}' "$G/grad-kmeans-k144.csv")
forget "gradkmeans-largest" "$G/grad-kmeans-k144.csv" "$big"
# Half of one class: the first half (in training order) of class group 3.
awk -F, 'NR > 1 && $2 == 3 {print $1}' "$G/class-k10.csv" > "$OUT/class3.txt"
half=$(( $(wc -l < "$OUT/class3.txt") / 2 ))
{ printf 'example\n'; head -n "$half" "$OUT/class3.txt"; } > "$OUT/class3-half.csv"
echo "== class3-half"
$B unlearn --run "$R" --forget "$OUT/class3-half.csv" --verify \
  --scores "$R/scores/magic-test.npy" --out "$OUT/unlearned-class3-half"
