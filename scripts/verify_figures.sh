#!/usr/bin/env bash
# The `explain --verify` figures of README "See why": for the first 20 test targets of a run,
# the predicted (-sum of tau) and the actual (retrained) change of the margin when the top-10
# proponents are removed, for MAGIC and TracIn scores: Pearson across targets and the mean ratio
# actual / predicted. Also times `attrib report` and gives the HTML size.
#
#   scripts/verify_figures.sh RUN_DIR          (a trained run, e.g. the demo's runs/demo)
#
# Scores are computed when missing (scores/verify-magic.npy, verify-tracin.npy over targets 0..20);
# the 80 retrainings (2 methods x 20 targets x proponents and opponents) are cached in the run's
# store (RUN/store/retrain/), so a rerun only reads them.
# Set ATTRIB to use an already built binary (default: target/release/attrib).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
run=${1:?usage: scripts/verify_figures.sh RUN_DIR}
A=${ATTRIB:-$root/target/release/attrib}
[ -x "$A" ] || (cd "$root" && cargo build --release -q)
for m in magic tracin; do
    if [ ! -f "$run/scores/verify-$m.npy" ]; then
        "$A" --quiet attribute --run "$run" --method "$m" --targets 0..20 --name "verify-$m" > /dev/null
    fi
    "$A" --json explain --run "$run" --scores "$run/scores/verify-$m.npy" --targets 0..20 --top 10 \
        --verify > "$run/verify-$m.jsonl"
    python3 - "$m" "$run/verify-$m.jsonl" <<'PY'
import json, sys, math
m, path = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(path)]
rows = [x for x in rows if x.get("type") == "verification"]
for side in ("proponents", "opponents"):
    r = [x for x in rows if x["removed"] == side]
    p = [x["predicted"] for x in r]; a = [x["actual"] for x in r]
    n = len(r); mp = sum(p) / n; ma = sum(a) / n
    cov = sum((u - mp) * (v - ma) for u, v in zip(p, a))
    sp = math.sqrt(sum((u - mp) ** 2 for u in p)); sa = math.sqrt(sum((v - ma) ** 2 for v in a))
    ratio = sum(v / u for u, v in zip(p, a)) / n
    print(f"{m:<7} top-10 {side:<10} targets {n}  pearson {cov / (sp * sa):.3f}  "
          f"mean actual/predicted {ratio:.3f}  mean predicted {mp:+.3f}  mean actual {ma:+.3f}")
PY
done
start=$(date +%s.%N)
"$A" report --run "$run"
end=$(date +%s.%N)
echo "report: $(python3 -c "print(f'{$end - $start:.2f}')") s wall, $(stat -c %s "$run/report/index.html") bytes"
