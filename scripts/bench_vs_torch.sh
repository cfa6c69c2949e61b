#!/usr/bin/env bash
# attrib vs PyTorch (CPU), side by side: training loop time per step and GEMM GFLOP/s, 1 and 2
# threads, medians of RUNS (default 3) interleaved runs per side (attrib, torch, attrib, torch...).
#
#   scripts/bench_vs_torch.sh            # ~2 s per measurement, a few minutes in all
#   QUICK=1 RUNS=5 scripts/bench_vs_torch.sh
#   ATTRIB=/path/to/attrib scripts/bench_vs_torch.sh   # time that binary, build nothing
#   ATTRIB_BEFORE=/path/to/old/attrib scripts/bench_vs_torch.sh   # also time an older build, in
#                                         # the same interleaved rounds (a "before" column)
#
# Creates a venv in $BENCH_VENV (default target/bench-venv) with numpy and the CPU torch wheel
# (download.pytorch.org/whl/cpu, falling back to plain PyPI), builds attrib in release (into
# $CARGO_TARGET_DIR when set) unless $ATTRIB names a binary, and prints
# the ratio table: attrib / PyTorch per-step loop time (< 1 means attrib is faster), and GEMM
# GFLOP/s side by side. attrib's side is `attrib --threads 2 --json bench train` (which measures
# 1 thread and 2 threads in one run); PyTorch's is scripts/bench_torch.py. Not run by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${BENCH_VENV:-target/bench-venv}
RUNS=${RUNS:-3}
THREADS=${THREADS:-2}
QUICK=${QUICK:-0}

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import torch, numpy' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q numpy torch --index-url https://download.pytorch.org/whl/cpu \
    || "$VENV/bin/pip" install -q numpy torch
fi
if [ -z "${ATTRIB:-}" ]; then
  cargo build --release -q
  ATTRIB=${CARGO_TARGET_DIR:-target}/release/attrib
fi

qa=(); qt=()
if [ "$QUICK" = 1 ]; then qa=(--quick); qt=(--quick); fi
OUT=$(mktemp -d)
for r in $(seq 1 "$RUNS"); do
  echo "run $r/$RUNS: attrib" >&2
  "$ATTRIB" --threads "$THREADS" --json bench train "${qa[@]}" > "$OUT/attrib.$r.jsonl"
  if [ -n "${ATTRIB_BEFORE:-}" ]; then
    echo "run $r/$RUNS: attrib before ($ATTRIB_BEFORE)" >&2
    "$ATTRIB_BEFORE" --threads "$THREADS" --json bench train "${qa[@]}" > "$OUT/before.$r.jsonl"
  fi
  echo "run $r/$RUNS: torch" >&2
  "$VENV/bin/python" scripts/bench_torch.py --threads 1 "$THREADS" "${qt[@]}" > "$OUT/torch.$r.jsonl"
done

"$VENV/bin/python" - "$OUT" "$RUNS" <<'PY'
import glob, json, statistics, sys, torch
out, runs = sys.argv[1], int(sys.argv[2])
def load(side):
    rows = []
    for f in sorted(glob.glob(f"{out}/{side}.*.jsonl")):
        for line in open(f):
            line = line.strip()
            if line.startswith("{"):
                rows.append(json.loads(line))
    return rows
a, t, bef = load("attrib"), load("torch"), load("before")
med = statistics.median
print(f"torch {torch.__version__}, {runs} interleaved runs per side, medians")
print()
if bef:
    print("| workload | threads | attrib before ms/step | attrib ms/step | PyTorch ms/step | before / PyTorch | attrib / PyTorch |")
    print("|---|---|---|---|---|---|---|")
else:
    print("| workload | threads | attrib ms/step | PyTorch ms/step | attrib / PyTorch |")
    print("|---|---|---|---|---|")
def step_ms(rows, name, th):
    return [1e3 * r["seconds"] / r["iterations"] for r in rows if r.get("type") == "bench_train"
            and r["workload"] == name and r["mode"] == "step" and r["threads"] == th]
names = []
for r in a:
    if r.get("type") == "bench_train" and r["mode"] == "step" and r["workload"] not in names:
        names.append(r["workload"])
for name in names:
    for th in sorted({r["threads"] for r in a if r.get("type") == "bench_train"}):
        am = step_ms(a, name, th)
        bm = step_ms(bef, name, th)
        tm = [r["ms_per_step"] for r in t if r["kind"] == "step" and r["workload"] == name
              and r["threads"] == th]
        if am and tm:
            label = f"{name}, batch {next(r['batch'] for r in t if r['kind']=='step' and r['workload']==name)}"
            if bef:
                b_ms = f"{med(bm):.3f}" if bm else "-"
                b_ratio = f"{med(bm)/med(tm):.2f}" if bm else "-"
                print(f"| {label} | {th} | {b_ms} | {med(am):.3f} | {med(tm):.3f} | {b_ratio} | {med(am)/med(tm):.2f} |")
            else:
                print(f"| {label} | {th} | {med(am):.3f} | {med(tm):.3f} | {med(am)/med(tm):.2f} |")
print()
print("| GEMM f32 | threads | attrib GFLOP/s | PyTorch GFLOP/s | attrib / PyTorch |")
print("|---|---|---|---|---|")
shapes = sorted({(r["m"], r["k"], r["n"]) for r in t if r["kind"] == "gemm"})
for (m, k, n) in shapes:
    for th in sorted({r["threads"] for r in t if r["kind"] == "gemm"}):
        ag = [r["gflops"] for r in a if r.get("type") == "gemm" and (r["m"], r["k"], r["n"]) == (m, k, n) and r["threads"] == th]
        tg = [r["gflops"] for r in t if r["kind"] == "gemm" and (r["m"], r["k"], r["n"]) == (m, k, n) and r["threads"] == th]
        at = f"{med(ag):.1f}" if ag else "not measured"
        ratio = f"{med(ag)/med(tg):.2f}" if ag else "-"
        print(f"| {m}x{k} @ {k}x{n} | {th} | {at} | {med(tg):.1f} | {ratio} |")
PY
rm -rf "$OUT"
