#!/usr/bin/env bash
# Start a real single-node SLURM (slurmctld + slurmd + munged) on this machine, for
# `make test-cluster`. Needs root; works without systemd (daemons are started directly).
#
#   tests/cluster/slurm_up.sh      # start (a no-op if already up); stop with slurm_down.sh
#
# What it does:
#   1. installs Debian's slurmctld, slurmd, slurm-client and munge if missing (apt-get);
#   2. creates /etc/munge/munge.key if missing;
#   3. starts munged as user `munge` with its socket in $STATE/munge (mode 711);
#   4. writes /etc/slurm/slurm.conf, gres.conf and cgroup.conf from the templates next to
#      this script, backing up any existing files into $STATE/backup (slurm_down.sh
#      restores them, or removes the files it created); with a writable cgroup v1 memory
#      controller, jobs run in cgroups limited to their --mem (memory enforced);
#   5. starts slurmctld and slurmd (their PID files are in $STATE) and waits until
#      `sinfo` shows the node idle;
#   6. with cgroups, proves the limit: a job that asks for 100 MB and allocates 400 MB must be
#      killed. $STATE/memory_enforced then says "yes", or "no: <why>".
#
# Environment (all optional):
#   MFAE_SLURM_STATE      state dir (PIDs, spool, logs, backups)    [/tmp/mfae-slurm]
#   MFAE_SLURM_PARTITION  name of the single (default) partition    [debug]
#   MFAE_SLURM_CPUS       CPUs of the node                          [nproc]
#   MFAE_SLURM_MEM_MB     RealMemory of the node                    [90% of MemTotal]
#   MFAE_SLURM_CTLD_PORT / MFAE_SLURM_SLURMD_PORT                   [6817 / 6818]
#   MFAE_SLURM_TIMEOUT    seconds to wait for the node to be idle   [60]
#   MFAE_SLURM_CGROUP     auto (cgroups when possible), yes, no     [auto]
#   MFAE_SLURM_KEEP_ON_FAIL=1  leave everything in place if startup fails (debugging)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${MFAE_SLURM_STATE:-/tmp/mfae-slurm}
PARTITION=${MFAE_SLURM_PARTITION:-debug}
CTLD_PORT=${MFAE_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${MFAE_SLURM_SLURMD_PORT:-6818}
TIMEOUT=${MFAE_SLURM_TIMEOUT:-60}
HOST=$(hostname -s)
ETC=/etc/slurm
MUNGE_DIR=$STATE/munge
MUNGE_SOCKET=$MUNGE_DIR/munge.socket

log() { echo "slurm_up: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [[ $(id -u) -ne 0 ]]; then
    log "needs root (it installs packages, writes /etc/slurm and starts daemons)"
    exit 2
fi

alive() {  # alive PIDFILE COMM: the process in PIDFILE runs (not a zombie) and is called COMM
    local pid stat
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/comm ]] && [[ $(</proc/"$pid"/comm) == "$2" ]] || return 1
    stat=$(</proc/"$pid"/stat) 2>/dev/null || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != [ZX] ]]  # PID 1 of a container may not reap dead daemons at once
}

node_state() { timeout 10 sinfo -h -N -n "$HOST" -o %T 2>/dev/null | head -n1 || true; }

# --- already up? ------------------------------------------------------------------------
if [[ -f $STATE/up ]] && alive "$MUNGE_DIR/munged.pid" munged \
    && alive "$STATE/slurmctld.pid" slurmctld && alive "$STATE/slurmd.pid" slurmd; then
    case $(node_state) in
        idle*|mixed*|allocated*|completing*) log "already up (node $HOST: $(node_state))"; exit 0 ;;
    esac
fi
# Leftovers of a crashed or half-started cluster: clean them up (and restore /etc/slurm).
if [[ -e $STATE ]]; then
    log "found stale state in $STATE; cleaning it up first"
    "$HERE/slurm_down.sh"
fi

on_fail() {
    local rc=$?
    [[ $rc -eq 0 ]] && return
    log "startup failed (exit $rc); last lines of the logs:"
    for f in "$MUNGE_DIR/munged.log" "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log"; do
        [[ -f $f ]] && { echo "--- $f" >&2; tail -n 25 "$f" >&2; }
    done
    if [[ ${MFAE_SLURM_KEEP_ON_FAIL:-0} == 1 ]]; then
        log "MFAE_SLURM_KEEP_ON_FAIL=1: leaving $STATE and /etc/slurm as they are"
    else
        "$HERE/slurm_down.sh" || true
    fi
    exit "$rc"
}
trap on_fail EXIT

# --- 1. packages ------------------------------------------------------------------------
missing=0
for cmd in slurmctld slurmd sinfo sbatch squeue scontrol munged munge; do
    command -v "$cmd" >/dev/null 2>&1 || missing=1
done
if [[ $missing -eq 1 ]]; then
    log "installing slurmctld slurmd slurm-client munge (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    pkgs=(slurmctld slurmd slurm-client munge)
    if ! apt-get install -y -q --no-install-recommends "${pkgs[@]}" >"${TMPDIR:-/tmp}/mfae-slurm-apt.log" 2>&1; then
        apt-get update -q >>"${TMPDIR:-/tmp}/mfae-slurm-apt.log" 2>&1
        apt-get install -y -q --no-install-recommends "${pkgs[@]}" >>"${TMPDIR:-/tmp}/mfae-slurm-apt.log" 2>&1 \
            || die "apt-get install failed, see ${TMPDIR:-/tmp}/mfae-slurm-apt.log"
    fi
fi
id munge >/dev/null 2>&1 || die "no user 'munge' (is the munge package installed?)"

# --- 2. munge key -----------------------------------------------------------------------
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    install -d -o munge -g munge -m 700 /etc/munge
    mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null \
        || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
fi

# --- ports free? ------------------------------------------------------------------------
for port in "$CTLD_PORT" "$SLURMD_PORT"; do
    if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
        die "TCP port $port is already in use (another slurmctld/slurmd?); set MFAE_SLURM_CTLD_PORT/MFAE_SLURM_SLURMD_PORT"
    fi
done

# --- state dirs -------------------------------------------------------------------------
install -d -m 755 "$STATE" "$STATE/ctld" "$STATE/slurmd" "$STATE/log" "$STATE/gpus"
install -d -m 700 "$STATE/backup"
install -d -o munge -g munge -m 711 "$MUNGE_DIR"
ln -sfn /dev/null "$STATE/gpus/nvidia0"
ln -sfn /dev/null "$STATE/gpus/nvidia1"
: >"$STATE/manifest"

# --- 3. munged --------------------------------------------------------------------------
runuser -u munge -- munged \
    --socket="$MUNGE_SOCKET" --pid-file="$MUNGE_DIR/munged.pid" \
    --log-file="$MUNGE_DIR/munged.log" --seed-file="$MUNGE_DIR/munged.seed"
for _ in $(seq 50); do [[ -S $MUNGE_SOCKET ]] && break; sleep 0.1; done
munge -n -S "$MUNGE_SOCKET" | unmunge -S "$MUNGE_SOCKET" >/dev/null || die "munge does not work"
log "munged up (socket $MUNGE_SOCKET)"

# --- memory enforcement possible? -----------------------------------------------------------
# SLURM 22.05 confines jobs with cgroup v1 here (no systemd): the memory controller must be mounted
# at /sys/fs/cgroup/memory and writable (a test group with a limit is created and removed).
CGROUP_MODE=${MFAE_SLURM_CGROUP:-auto}
cgroup_why=""
cgroup_ok() {
    local probe=/sys/fs/cgroup/memory/mfae-slurm-probe.$$
    [[ -f /sys/fs/cgroup/memory/memory.limit_in_bytes ]] || { cgroup_why="no cgroup v1 memory controller at /sys/fs/cgroup/memory"; return 1; }
    mkdir "$probe" 2>/dev/null || { cgroup_why="cannot create a memory cgroup (read-only /sys/fs/cgroup?)"; return 1; }
    if ! echo 104857600 >"$probe/memory.limit_in_bytes" 2>/dev/null; then
        rmdir "$probe"; cgroup_why="cannot set a memory limit"; return 1
    fi
    rmdir "$probe"
}
case $CGROUP_MODE in
    yes) cgroup_ok || die "MFAE_SLURM_CGROUP=yes but $cgroup_why"; USE_CGROUP=1 ;;
    no) USE_CGROUP=0; cgroup_why="MFAE_SLURM_CGROUP=no" ;;
    *) if cgroup_ok; then USE_CGROUP=1; else USE_CGROUP=0; fi ;;
esac
if [[ $USE_CGROUP -eq 1 ]]; then
    PROCTRACK=proctrack/cgroup; TASKPLUGIN=task/cgroup
    echo "cgroups slurm" >>"$STATE/manifest"  # slurm_down.sh removes the slurm cgroup trees slurmd made
else
    PROCTRACK=proctrack/linuxproc; TASKPLUGIN=task/none
    log "memory NOT enforced: $cgroup_why"
fi

# --- 4. /etc/slurm ----------------------------------------------------------------------
if [[ ! -d $ETC ]]; then
    mkdir -p "$ETC"
    echo "rmdir $ETC" >>"$STATE/manifest"
fi
if getent hosts "$HOST" >/dev/null; then
    CTLD_HOST=$HOST; NODE_ADDR=$HOST
else  # unresolvable hostname: talk over loopback
    CTLD_HOST="$HOST(127.0.0.1)"; NODE_ADDR=127.0.0.1
fi
CPUS=${MFAE_SLURM_CPUS:-$(nproc)}
REAL_MEMORY=${MFAE_SLURM_MEM_MB:-$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)}
render() {
    sed -e "s|@HOSTNAME@|$HOST|g" -e "s|@CTLD_HOST@|$CTLD_HOST|g" -e "s|@NODE_ADDR@|$NODE_ADDR|g" \
        -e "s|@STATE_DIR@|$STATE|g" -e "s|@LOG_DIR@|$STATE/log|g" -e "s|@GPU_DIR@|$STATE/gpus|g" \
        -e "s|@MUNGE_SOCKET@|$MUNGE_SOCKET|g" -e "s|@CPUS@|$CPUS|g" -e "s|@REAL_MEMORY@|$REAL_MEMORY|g" \
        -e "s|@PARTITION@|$PARTITION|g" -e "s|@CTLD_PORT@|$CTLD_PORT|g" -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" \
        -e "s|@PROCTRACK@|$PROCTRACK|g" -e "s|@TASKPLUGIN@|$TASKPLUGIN|g" \
        "$1"
}
for f in slurm.conf gres.conf cgroup.conf; do
    if [[ -e $ETC/$f || -L $ETC/$f ]]; then
        cp -a "$ETC/$f" "$STATE/backup/$f"
        echo "restore $f" >>"$STATE/manifest"
    else
        echo "remove $f" >>"$STATE/manifest"
    fi
    render "$HERE/$f.in" >"$ETC/$f.mfae-tmp"
    chmod 644 "$ETC/$f.mfae-tmp"
    mv -f "$ETC/$f.mfae-tmp" "$ETC/$f"
done
grep -q @ <(grep -v '^#' "$ETC/slurm.conf" "$ETC/gres.conf" "$ETC/cgroup.conf") && die "unfilled placeholder in $ETC"

# --- 5. slurmctld, slurmd ---------------------------------------------------------------
slurmctld -c </dev/null >>"$STATE/log/slurmctld.out" 2>&1 || die "slurmctld did not start"
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q 'is UP' && break; sleep 0.1; done
alive "$STATE/slurmctld.pid" slurmctld || die "slurmctld is not running"
slurmd </dev/null >>"$STATE/log/slurmd.out" 2>&1 || die "slurmd did not start"

deadline=$((SECONDS + TIMEOUT))
while :; do
    st=$(node_state)
    case $st in
        idle*) break ;;
        *inval*|*drain*|*down*|*fail*)
            # a restarted node may briefly be down: give it a nudge, then insist
            if ((SECONDS > deadline - TIMEOUT / 2)); then
                scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
            fi ;;
    esac
    ((SECONDS < deadline)) || die "node $HOST not idle after ${TIMEOUT}s (state: '${st}')"
    sleep 0.5
done
alive "$STATE/slurmd.pid" slurmd || die "slurmd is not running"

# --- 6. memory enforcement, proven ------------------------------------------------------
if [[ $USE_CGROUP -eq 1 ]]; then
    # 100 MB asked, 400 MB touched: an enforced limit kills the step (exit status != 0)
    if timeout 120 srun -N1 -n1 --mem=100 -t 2 python3 -c \
        "b = bytearray(400 * 2**20); b[::4096] = b'x' * len(b[::4096]); print('not killed')" \
        >"$STATE/log/memprobe.out" 2>&1; then
        echo "no: a job that asked for 100 MB used 400 MB and was not killed (cgroup limits ignored)" \
            >"$STATE/memory_enforced"
    elif grep -qi "oom" "$STATE/log/memprobe.out"; then
        echo "yes" >"$STATE/memory_enforced"
    else
        echo "no: the probe job failed without an out-of-memory kill: $(head -c 300 "$STATE/log/memprobe.out")" \
            >"$STATE/memory_enforced"
    fi
else
    echo "no: $cgroup_why" >"$STATE/memory_enforced"
fi
touch "$STATE/up"
trap - EXIT
log "SLURM up: node $HOST idle, partition $PARTITION, ${CPUS} CPUs, ${REAL_MEMORY} MB, 2 fake GPUs (state in $STATE); memory enforced: $(<"$STATE/memory_enforced")"
