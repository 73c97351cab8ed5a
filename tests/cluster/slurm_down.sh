#!/usr/bin/env bash
# Stop the single-node SLURM started by slurm_up.sh and undo its changes:
# cancels leftover jobs, stops slurmd, slurmctld and munged by the PIDs recorded in the
# state dir, restores the /etc/slurm files that existed before (or removes those that
# slurm_up.sh created) and deletes the state dir. Safe to run twice, or when nothing runs.
#
#   tests/cluster/slurm_down.sh     # env: MFAE_SLURM_STATE [/tmp/mfae-slurm]
set -uo pipefail

STATE=${MFAE_SLURM_STATE:-/tmp/mfae-slurm}
ETC=/etc/slurm

log() { echo "slurm_down: $*" >&2; }

if [[ $(id -u) -ne 0 ]]; then
    log "needs root"
    exit 2
fi
if [[ ! -d $STATE ]]; then
    log "nothing to do ($STATE does not exist)"
    exit 0
fi

running() {  # running PID: the process exists and is not a zombie
    local stat
    stat=$(</proc/"$1"/stat) 2>/dev/null || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != [ZX] ]]  # PID 1 of a container may not reap dead daemons at once
}

pid_of() {  # pid_of PIDFILE COMM: print the PID if that process runs and is called COMM
    local pid
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/comm ]] && [[ $(</proc/"$pid"/comm) == "$2" ]] || return 1
    running "$pid" || return 1
    echo "$pid"
}

stop() {  # stop PIDFILE COMM: SIGTERM, wait up to 10 s, then SIGKILL
    local pid
    pid=$(pid_of "$1" "$2") || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do
        running "$pid" || { log "stopped $2 (pid $pid)"; return 0; }
        sleep 0.1
    done
    log "$2 (pid $pid) ignored SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null
}

# Jobs still queued or running would leave slurmstepd processes behind: cancel them
# while the controller and slurmd are still up (only if this is our cluster).
if [[ -f $STATE/manifest ]] && pid_of "$STATE/slurmctld.pid" slurmctld >/dev/null; then
    jobs=$(timeout 10 squeue -h -o %i 2>/dev/null)
    if [[ -n $jobs ]]; then
        log "cancelling jobs: $(echo $jobs)"
        timeout 10 scancel $jobs 2>/dev/null
        for _ in $(seq 30); do
            [[ -z $(timeout 10 squeue -h -t running,completing -o %i 2>/dev/null) ]] && break
            sleep 0.5
        done
    fi
fi

stop "$STATE/slurmd.pid" slurmd
stop "$STATE/slurmctld.pid" slurmctld
stop "$STATE/munge/munged.pid" munged

# Restore /etc/slurm (in reverse order of the manifest, so that rmdir comes last).
if [[ -f $STATE/manifest ]]; then
    tac "$STATE/manifest" | while read -r action what; do
        case $action in
            restore) cp -a "$STATE/backup/$what" "$ETC/$what" && log "restored $ETC/$what" ;;
            remove) rm -f "$ETC/$what" && log "removed $ETC/$what" ;;
            rmdir) rmdir "$what" 2>/dev/null && log "removed $what" ;;
            cgroups) for tree in /sys/fs/cgroup/*/"$what"; do  # empty job cgroups, deepest first
                         [[ -d $tree ]] && find "$tree" -depth -type d -exec rmdir {} \; 2>/dev/null
                     done ;;
        esac
    done
fi
rm -f "$ETC"/*.mfae-tmp 2>/dev/null

rm -rf "$STATE"
log "done"
exit 0
