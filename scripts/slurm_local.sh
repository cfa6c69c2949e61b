#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the integration test of `attrib slurm`
# (crates/cli/tests/slurm.rs) and for trying sharded runs by hand. No systemd: the daemons are
# started directly and stopped by PID.
#
#   scripts/slurm_local.sh start DIR   # writes DIR/slurm.conf, starts munged, slurmctld, slurmd
#   export SLURM_CONF=DIR/slurm.conf   # then sbatch, squeue, sacct use this cluster
#   scripts/slurm_local.sh stop DIR
#
# Needs root and Debian's slurm-wlm and munge (.ci/run installs them). SLURM_LOCAL_PORT (default
# 6817) is slurmctld's port and the next one slurmd's, so that test clusters can run side by side.
set -euo pipefail
cmd=${1:?usage: slurm_local.sh start|stop DIR}
dir=$(mkdir -p "${2:?usage: slurm_local.sh start|stop DIR}" && cd "$2" && pwd)

stop() {
    local pids=()
    for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munged.pid"; do
        if [ -f "$pidfile" ]; then
            pids+=("$(cat "$pidfile")")
            rm -f "$pidfile"
        fi
    done
    [ ${#pids[@]} -eq 0 ] && return 0
    kill "${pids[@]}" 2>/dev/null || true
    # The daemons take a few seconds to shut down; wait so that a next cluster can bind.
    for _ in $(seq 1 40); do
        kill -0 "${pids[@]}" 2>/dev/null || return 0
        sleep 0.25
    done
    kill -9 "${pids[@]}" 2>/dev/null || true
}

if [ "$cmd" = stop ]; then
    stop
    exit 0
fi
[ "$cmd" = start ] || { echo "usage: slurm_local.sh start|stop DIR" >&2; exit 2; }

mkdir -p "$dir/state" "$dir/spool" "$dir/munge" "$dir/log"
host=$(hostname -s)
# The node line as slurmd itself reports it (CPUs, sockets, memory), minus its uptime line.
node=$(slurmd -C | grep '^NodeName=')
cat > "$dir/slurm.conf" <<EOF
ClusterName=attrib-local
SlurmctldHost=$host
SlurmctldPort=${SLURM_LOCAL_PORT:-6817}
SlurmdPort=$(( ${SLURM_LOCAL_PORT:-6817} + 1 ))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
$node
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF

# munged: the package's key, our own socket and pid file.
munge_sock=/run/munge/munge.socket.2
mkdir -p /run/munge
chown munge:munge /run/munge 2>/dev/null || true
if ! [ -S "$munge_sock" ]; then
    munged --force --pid-file="$dir/munged.pid" 2>>"$dir/log/munged.log" ||
        { echo "munged failed to start: $(tail -3 "$dir/log/munged.log")" >&2; exit 1; }
fi
export SLURM_CONF="$dir/slurm.conf"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
# Wait until the node accepts jobs.
for _ in $(seq 1 60); do
    if sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
        echo "slurm up: SLURM_CONF=$SLURM_CONF"
        exit 0
    fi
    sleep 0.5
done
echo "slurm did not come up; logs in $dir/log:" >&2
tail -5 "$dir/log/"*.log >&2 || true
stop
exit 1
