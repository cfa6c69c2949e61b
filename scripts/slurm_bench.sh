#!/usr/bin/env bash
# The measurements of README "Past one machine": wall time of ground truth (100 subsets, 5% drop)
# and MAGIC (359 test margins) on the demo recipe, in one process and as Slurm array jobs on the
# local one-node cluster of scripts/slurm_local.sh (root, slurm-wlm, munge), the bytes each stage
# writes, `attrib status`, and a check that both give the same files.
#
#   scripts/slurm_bench.sh [SHARDS]      (default 2: one array task per core of this machine)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shards=${1:-2}
cd "$root" && cargo build --release --quiet
A=$root/target/release/attrib
work=$(mktemp -d /tmp/attrib-slurm-bench.XXXXXX)
cluster=$work/cluster
trap '"$root/scripts/slurm_local.sh" stop "$cluster" >/dev/null 2>&1 || true' EXIT
SLURM_LOCAL_PORT=${SLURM_LOCAL_PORT:-6837} "$root/scripts/slurm_local.sh" start "$cluster" >/dev/null
export SLURM_CONF=$cluster/slurm.conf
cd "$work"
for r in one array; do
    "$A" --quiet train --config "$root/examples/digits_mlp.toml" --out "$r"
done
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.1f}')"; }
wait_idle() { while [ -n "$(squeue -h -o %i)" ]; do sleep 0.5; done; }
gt=(groundtruth --drop 0.05 --subsets 100)
magic=(attribute --method magic --targets 0..359 --name magic359)
for stage in gt magic; do
    if [ $stage = gt ]; then args=("${gt[@]}"); else args=("${magic[@]}"); fi
    t0=$(now); "$A" --quiet "${args[0]}" --run one "${args[@]:1}" >/dev/null; t1=$(now)
    "$A" --quiet slurm --run array --shards "$shards" --cpus-per-task 1 --name "$stage" --submit -- \
        "${args[0]}" --run array "${args[@]:1}" >/dev/null
    wait_idle; t2=$(now)
    echo "$stage: one process $(elapsed "$t0" "$t1") s; $shards array tasks + assemble $(elapsed "$t1" "$t2") s (submission to the last job's end)"
done
echo "bytes written: groundtruth $(du -sb one/groundtruth | cut -f1), magic blocks $(du -sb array/store/magic-block | cut -f1), scores $(du -sb one/scores | cut -f1)"
diff -r one/groundtruth array/groundtruth && cmp one/scores/magic359.npy array/scores/magic359.npy &&
    echo "identical: ground truth and MAGIC scores of the array jobs are the one process's bytes"
"$A" status --run array
