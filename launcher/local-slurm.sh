#!/usr/bin/env bash
# local-slurm.sh: a real one-node Slurm cluster on this machine, for tests.
#
# Usage: local-slurm.sh start|status|stop
#
#   start   Install the Debian packages if missing (slurmctld slurmd
#           slurm-client munge), write /etc/slurm/slurm.conf and cgroup.conf,
#           create a munge key if there is none, start munged, slurmctld and
#           slurmd as plain background daemons (no systemd needed) and wait
#           until the node is idle. Idempotent: when our daemons already run
#           with the same configuration it returns at once; when the
#           configuration changed (e.g. another KILLWAIT) it cancels the jobs
#           and restarts only the daemons it started itself.
#   status  Say whether each daemon runs (and whether this script started it),
#           then print `sinfo`. Exit 0 when the cluster answers, 1 otherwise.
#   stop    Cancel every job, wait up to 3 s, SIGKILL what is left of the jobs
#           (descendants of slurmstepd, pids in Slurm's freezer cgroups), then
#           stop only the daemons whose pids this script recorded: a munged or
#           Slurm that it did not start is left alone. Idempotent.
#
# start and stop need root. Jobs run as whoever submits them (root included).
# Safe with no TTY, CI=true, stdin closed, under setsid and from
# subprocess.run(capture_output=True): the daemons get /dev/null as stdin,
# log files as stdout/stderr, their own session, and no other inherited fd.
#
# Settings (environment variables, defaults in brackets):
#   KILLWAIT                  Slurm's KillWait, seconds between the SIGTERM and
#                             the SIGKILL of a cancelled/timed-out job [5]
#   LOCAL_SLURM_DIR           pid files, logs, Slurm state [/var/lib/local-slurm]
#   LOCAL_SLURM_PARTITION     name of the (default) partition [debug]
#   LOCAL_SLURM_PROCTRACK     auto, cgroup or linuxproc [auto: cgroup when a
#                             cgroup v1 mkdir probe under freezer, cpuset and
#                             memory succeeds, else linuxproc]
#   LOCAL_SLURM_START_TIMEOUT seconds to wait for each daemon and for the node
#                             to become idle [60]
#   LOCAL_SLURM_DEBUG         SlurmctldDebug/SlurmdDebug level [info]
#
# Files: /etc/slurm/slurm.conf and /etc/slurm/cgroup.conf (rewritten by every
# start; a file not written by this script is kept as *.local-slurm-bak),
# $LOCAL_SLURM_DIR/log/{slurmctld,slurmd}.log, *.out (daemons' stdout/stderr),
# apt.log, jobcomp.log (so `sacct -c -j ID` works without slurmdbd), and
# $LOCAL_SLURM_DIR/run/<daemon>.pid ("pid starttime").
set -euo pipefail

PROG=local-slurm
KILLWAIT=${KILLWAIT:-5}
STATE_DIR=${LOCAL_SLURM_DIR:-/var/lib/local-slurm}
PARTITION=${LOCAL_SLURM_PARTITION:-debug}
PROCTRACK=${LOCAL_SLURM_PROCTRACK:-auto}
START_TIMEOUT=${LOCAL_SLURM_START_TIMEOUT:-60}
DEBUG_LEVEL=${LOCAL_SLURM_DEBUG:-info}

CONF_DIR=/etc/slurm
SLURM_CONF_FILE=$CONF_DIR/slurm.conf
CGROUP_CONF_FILE=$CONF_DIR/cgroup.conf
MUNGE_KEY=/etc/munge/munge.key
RUN_DIR=$STATE_DIR/run
LOG_DIR=$STATE_DIR/log
PACKAGES=(slurmctld slurmd slurm-client munge)
MARKER="# Written by launcher/local-slurm.sh"
POLICY_RC=/usr/sbin/policy-rc.d
POLICY_MARKER="# temporary, from local-slurm.sh"

export PATH="$PATH:/usr/sbin:/sbin"
export LC_ALL=C

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}
now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

cleanup() {
    # Remove the policy-rc.d we put in place during the install, if any.
    if [[ -f $POLICY_RC ]] && grep -qF "$POLICY_MARKER" "$POLICY_RC" 2>/dev/null; then
        rm -f "$POLICY_RC"
    fi
}
trap cleanup EXIT

need_root() {
    [[ $(id -u) -eq 0 ]] || die "'$1' needs root (it installs packages and starts daemons)"
}

check_settings() {
    [[ $KILLWAIT =~ ^[0-9]+$ ]] || die "KILLWAIT must be a number of seconds, got '$KILLWAIT'"
    [[ $START_TIMEOUT =~ ^[0-9]+$ ]] ||
        die "LOCAL_SLURM_START_TIMEOUT must be a number of seconds, got '$START_TIMEOUT'"
    [[ $PARTITION =~ ^[A-Za-z0-9_-]+$ ]] || die "bad LOCAL_SLURM_PARTITION '$PARTITION'"
    case $PROCTRACK in
    auto | cgroup | linuxproc) ;;
    *) die "LOCAL_SLURM_PROCTRACK must be auto, cgroup or linuxproc, got '$PROCTRACK'" ;;
    esac
}

take_lock() {
    mkdir -p "$STATE_DIR"
    exec 9>"$STATE_DIR/lock"
    flock -w 600 9 || die "another local-slurm.sh holds $STATE_DIR/lock"
}

# ---------------------------------------------------------------- processes

# proc_field PID N: field N (1-based, as in proc(5)) of /proc/PID/stat, for
# N >= 3 (fields after the command name, which may contain spaces).
proc_field() {
    local stat rest
    local -a f
    { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
    rest=${stat##*) }
    read -r -a f <<<"$rest"
    printf '%s' "${f[$(($2 - 3))]}"
}

proc_comm() {
    local c
    { read -r c <"/proc/$1/comm"; } 2>/dev/null || return 1
    printf '%s' "$c"
}

# alive PID: the process exists and is not a zombie (pid 1 here reaps slowly).
alive() {
    local state
    state=$(proc_field "$1" 3) || return 1
    [[ $state != Z && $state != X ]]
}

# pids_named NAME: live processes whose comm is NAME.
pids_named() {
    local d pid
    for d in /proc/[0-9]*; do
        pid=${d#/proc/}
        [[ $(proc_comm "$pid" 2>/dev/null || true) == "$1" ]] || continue
        alive "$pid" && printf '%s\n' "$pid"
    done
    return 0
}

record_pid() { printf '%s %s\n' "$2" "$(proc_field "$2" 22)" >"$RUN_DIR/$1.pid"; }

# our_pid NAME: the pid recorded for daemon NAME if that very process (same
# start time, same name) still runs; fails otherwise.
our_pid() {
    local pid start
    [[ -r $RUN_DIR/$1.pid ]] || return 1
    read -r pid start <"$RUN_DIR/$1.pid" || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    [[ $(proc_field "$pid" 22) == "$start" ]] || return 1
    [[ $(proc_comm "$pid") == "$1" ]] || return 1
    printf '%s' "$pid"
}

# foreign_pids NAME: live NAME processes not recorded by us (children forked
# by our daemon, not yet exec'ed, are not counted).
foreign_pids() {
    local ours pid out=()
    ours=$(our_pid "$1" || true)
    for pid in $(pids_named "$1"); do
        [[ $pid == "$ours" ]] && continue
        [[ -n $ours && $(proc_field "$pid" 4 || true) == "$ours" ]] && continue
        out+=("$pid")
    done
    printf '%s' "${out[*]}"
}

# spawn NAME CMD...: start CMD as a daemon in its own session with stdin from
# /dev/null, stdout/stderr to $LOG_DIR/NAME.out and no other fd inherited
# (the caller's pipes and our lock must not leak), then record its pid.
spawn() {
    local name=$1 pid deadline
    shift
    printf '=== %s local-slurm.sh: %s\n' "$(date '+%F %T')" "$*" >>"$LOG_DIR/$name.out"
    (
        cd /
        for fd in /proc/self/fd/*; do
            fd=${fd##*/}
            if [[ $fd -gt 2 ]]; then eval "exec $fd>&-" 2>/dev/null || true; fi
        done
        exec setsid "$@" </dev/null >>"$LOG_DIR/$name.out" 2>&1
    ) &
    pid=$!
    deadline=$((SECONDS + 10))
    until [[ $(proc_comm "$pid" || true) == "$name" ]]; do
        if ! alive "$pid"; then
            tail -n 20 "$LOG_DIR/$name.out" >&2 || true
            die "$name exited at once (log: $LOG_DIR/$name.out)"
        fi
        ((SECONDS < deadline)) || die "$name (pid $pid) did not start"
        sleep 0.02
    done
    record_pid "$name" "$pid"
}

# stop_daemons NAME...: SIGTERM the recorded daemons, wait for them (bounded),
# SIGKILL the ones left. Never touches a process we did not record.
stop_daemons() {
    local name pid deadline left
    local -a pids=()
    for name in "$@"; do
        if pid=$(our_pid "$name"); then
            say "stopping $name (pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
    done
    deadline=$((SECONDS + 15))
    while :; do
        left=()
        for pid in "${pids[@]}"; do alive "$pid" && left+=("$pid"); done
        ((${#left[@]} == 0)) && break
        if ((SECONDS >= deadline)); then
            say "SIGKILL to ${left[*]} (did not exit on SIGTERM within 15 s)"
            kill -KILL "${left[@]}" 2>/dev/null || true
            sleep 0.2
            break
        fi
        sleep 0.1
    done
    for name in "$@"; do rm -f "$RUN_DIR/$name.pid"; done
}

# ------------------------------------------------------------------- slurm

cluster_answers() {
    local out
    out=$(timeout 5 scontrol ping 2>/dev/null) || return 1
    [[ $out == *" is UP"* ]]
}

node_state() { timeout 5 sinfo -h -N -n "$1" -o %T 2>/dev/null | head -n 1; }

no_jobs_left() { [[ -z $(timeout 5 squeue -h -o %A 2>/dev/null || true) ]]; }

# wait_no_jobs SECONDS: wait (bounded) until squeue lists no job.
wait_no_jobs() {
    local deadline=$((SECONDS + $1))
    until no_jobs_left; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# Cancel every job, wait up to 3 s, SIGKILL whatever is left of them, then
# wait (bounded) until slurmctld has seen them end: slurmd stops fast only when
# it can still tell slurmctld that its jobs are over.
drain_jobs() {
    local ids
    if cluster_answers; then
        ids=$(timeout 10 squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ' || true)
        if [[ -n ${ids// /} ]]; then
            say "cancelling jobs: $ids"
            # shellcheck disable=SC2086 # a list of job ids
            timeout 10 scancel $ids 2>/dev/null || true
            wait_no_jobs 3 || {
                kill_job_processes
                wait_no_jobs 10 || say "jobs still listed by squeue: going on"
            }
        fi
    fi
    kill_job_processes
}

# SIGKILL descendants of every slurmstepd and the pids in Slurm's job freezer
# cgroups (jobs that ignore SIGTERM would otherwise take KillWait each).
kill_job_processes() {
    local d pid ppid comm p depth f
    local -A parent=() name=() victims=() keep=()
    for d in /proc/[0-9]*; do
        pid=${d#/proc/}
        ppid=$(proc_field "$pid" 4 2>/dev/null) || continue
        comm=$(proc_comm "$pid" 2>/dev/null) || continue
        parent[$pid]=$ppid
        name[$pid]=$comm
    done
    keep[$$]=1
    keep[1]=1
    for comm in munged slurmctld slurmd; do
        p=$(our_pid "$comm" || true)
        [[ -n $p ]] && keep[$p]=1
    done
    for pid in "${!parent[@]}"; do
        p=${parent[$pid]}
        depth=0
        while [[ -n $p && $p != 0 && $p != 1 ]] && ((depth++ < 64)); do
            if [[ ${name[$p]:-} == slurmstepd ]]; then
                victims[$pid]=1
                break
            fi
            p=${parent[$p]:-}
        done
    done
    if [[ -d /sys/fs/cgroup/freezer ]]; then
        while IFS= read -r f; do
            while read -r pid; do
                [[ -n $pid ]] && victims[$pid]=1
            done <"$f" 2>/dev/null || true
        done < <(find /sys/fs/cgroup/freezer -path '*/slurm*/uid_*' -name cgroup.procs 2>/dev/null)
    fi
    for pid in "${!keep[@]}"; do unset "victims[$pid]"; done
    if ((${#victims[@]} > 0)); then
        say "killing leftover job processes: ${!victims[*]}"
        kill -KILL "${!victims[@]}" 2>/dev/null || true
    fi
}

# ------------------------------------------------------------------ install

installed() {
    local st
    st=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)
    [[ $st == "install ok installed" ]]
}

apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef \
        -o Dpkg::Options::=--force-confold "$@" </dev/null >>"$LOG_DIR/apt.log" 2>&1
}

ensure_packages() {
    local p t0
    local -a missing=()
    for p in "${PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
    ((${#missing[@]} == 0)) && return 0
    t0=$(now)
    say "installing ${missing[*]} (log: $LOG_DIR/apt.log)"
    command -v apt-get >/dev/null || die "apt-get not found: install ${missing[*]} by hand"
    # Keep the packages' postinst from starting the daemons with their own
    # config: we start them ourselves below.
    if [[ ! -e $POLICY_RC ]]; then
        printf '#!/bin/sh\n%s\nexit 101\n' "$POLICY_MARKER" >"$POLICY_RC"
        chmod 755 "$POLICY_RC"
    fi
    if ! apt_install "${missing[@]}"; then
        say "install failed; running apt-get update and retrying"
        DEBIAN_FRONTEND=noninteractive apt-get update -q -o DPkg::Lock::Timeout=300 \
            </dev/null >>"$LOG_DIR/apt.log" 2>&1 || {
            tail -n 20 "$LOG_DIR/apt.log" >&2
            die "apt-get update failed (log: $LOG_DIR/apt.log)"
        }
        apt_install "${missing[@]}" || {
            tail -n 20 "$LOG_DIR/apt.log" >&2
            die "apt-get install ${missing[*]} failed (log: $LOG_DIR/apt.log)"
        }
    fi
    cleanup
    say "installed in $(since "$t0") s"
}

# ------------------------------------------------------------------- config

cgroup_v1_probe() {
    local c d
    for c in freezer cpuset memory; do
        d=/sys/fs/cgroup/$c/local-slurm-probe.$$
        mkdir "$d" 2>/dev/null || return 1
        rmdir "$d" 2>/dev/null || true
    done
}

choose_proctrack() {
    case $PROCTRACK in
    cgroup | linuxproc) printf '%s' "$PROCTRACK" ;;
    auto) if cgroup_v1_probe; then printf cgroup; else printf linuxproc; fi ;;
    esac
}

# render_slurm_conf NODE CPUS MEM TRACK
render_slurm_conf() {
    local node=$1 cpus=$2 mem=$3 track=$4
    local defmem=$((mem / cpus))
    cat <<EOF
$MARKER on every start: a one-node test cluster.
ClusterName=local
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
StateSaveLocation=$STATE_DIR/slurmctld
SlurmdSpoolDir=$STATE_DIR/slurmd
SlurmctldPidFile=$RUN_DIR/slurmctld.daemon.pid
SlurmdPidFile=$RUN_DIR/slurmd.daemon.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=$DEBUG_LEVEL
SlurmdDebug=$DEBUG_LEVEL
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=$defmem
KillWait=$KILLWAIT
MinJobAge=300
InactiveLimit=0
Waittime=0
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log
EOF
    if [[ $track == cgroup ]]; then
        cat <<EOF
ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup,task/affinity
JobAcctGatherType=jobacct_gather/cgroup
EOF
    else
        cat <<EOF
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
EOF
    fi
    cat <<EOF
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
}

render_cgroup_conf() {
    printf '%s on every start.\n' "$MARKER"
    printf 'CgroupPlugin=autodetect\n'
    if [[ $1 == cgroup ]]; then
        printf 'ConstrainCores=yes\nConstrainRAMSpace=yes\nConstrainSwapSpace=yes\n'
    fi
}

# install_conf NEW DEST: move NEW to DEST, keeping a DEST we did not write.
install_conf() {
    if [[ -e $2 ]] && ! grep -qF "$MARKER" "$2"; then
        say "keeping the existing $2 as $2.local-slurm-bak"
        cp -p "$2" "$2.local-slurm-bak"
    fi
    install -m 0644 "$1" "$2"
}

# -------------------------------------------------------------------- munge

munge_works() { timeout 5 munge -n </dev/null 2>/dev/null | timeout 5 unmunge >/dev/null 2>&1; }

ensure_munge() {
    local pid foreign deadline
    if [[ ! -s $MUNGE_KEY ]]; then
        say "creating $MUNGE_KEY"
        install -d -o munge -g munge -m 0700 "$(dirname "$MUNGE_KEY")"
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile="$MUNGE_KEY" --force
        else
            dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
        fi
        chown munge:munge "$MUNGE_KEY"
        chmod 0400 "$MUNGE_KEY"
    fi
    if munge_works; then
        our_pid munged >/dev/null || say "using the munged already running (not started by this script)"
        return 0
    fi
    if pid=$(our_pid munged); then
        say "our munged (pid $pid) does not answer: restarting it"
        stop_daemons munged
    fi
    foreign=$(foreign_pids munged)
    [[ -z $foreign ]] || die "a munged not started by this script runs (pid $foreign) but does not answer"
    install -d -o munge -g munge -m 0755 /run/munge
    spawn munged setpriv --reuid=munge --regid=munge --init-groups munged --foreground
    deadline=$((SECONDS + START_TIMEOUT))
    until munge_works; do
        if ! our_pid munged >/dev/null; then
            tail -n 20 "$LOG_DIR/munged.out" >&2 || true
            die "munged exited (log: $LOG_DIR/munged.out, /var/log/munge/munged.log)"
        fi
        ((SECONDS < deadline)) || die "munged does not answer after ${START_TIMEOUT} s"
        sleep 0.05
    done
}

# ------------------------------------------------------------------ startup

# wait_for_node NODE: wait (bounded) until NODE is idle; resume it once if it
# is drained or down while our slurmd runs.
wait_for_node() {
    local node=$1 state="" deadline resumed=0 d
    deadline=$((SECONDS + START_TIMEOUT))
    while :; do
        state=$(node_state "$node" || true)
        [[ $state == idle ]] && return 0
        if ((!resumed)) && [[ $state == drain* || $state == down || $state == drained ]]; then
            say "node $node is $state: $(timeout 5 scontrol show node "$node" 2>/dev/null | grep -o 'Reason=.*' || true)"
            timeout 5 scontrol update NodeName="$node" State=RESUME 2>/dev/null || true
            resumed=1
        fi
        for d in slurmctld slurmd; do
            if ! our_pid "$d" >/dev/null; then
                tail -n 20 "$LOG_DIR/$d.log" "$LOG_DIR/$d.out" >&2 2>/dev/null || true
                die "$d exited (logs: $LOG_DIR/$d.log, $LOG_DIR/$d.out)"
            fi
        done
        if ((SECONDS >= deadline)); then
            timeout 5 scontrol show node "$node" >&2 2>/dev/null || true
            tail -n 20 "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" >&2 2>/dev/null || true
            die "node $node is '${state:-not answering}', not idle, after ${START_TIMEOUT} s (logs in $LOG_DIR)"
        fi
        sleep 0.1
    done
}

start_slurm_daemons() {
    local node=$1 deadline
    mkdir -p "$STATE_DIR/slurmctld" "$STATE_DIR/slurmd"
    spawn slurmctld slurmctld -D -c
    deadline=$((SECONDS + START_TIMEOUT))
    until cluster_answers; do
        if ! our_pid slurmctld >/dev/null; then
            tail -n 20 "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmctld.out" >&2 2>/dev/null || true
            die "slurmctld exited (logs: $LOG_DIR/slurmctld.log, $LOG_DIR/slurmctld.out)"
        fi
        ((SECONDS < deadline)) || die "slurmctld does not answer after ${START_TIMEOUT} s (log: $LOG_DIR/slurmctld.log)"
        sleep 0.05
    done
    spawn slurmd slurmd -D -N "$node"
    wait_for_node "$node"
}

cmd_start() {
    local t0 node hw cpus mem track tmp ctld slurmd_pid foreign name same=0 state
    t0=$(now)
    need_root start
    check_settings
    take_lock
    mkdir -p "$RUN_DIR" "$LOG_DIR"
    ensure_packages
    for name in slurmctld slurmd scontrol sinfo munged; do
        command -v "$name" >/dev/null || die "$name not found after installing ${PACKAGES[*]}"
    done

    node=$(hostname -s)
    hw=$(slurmd -C 2>/dev/null | head -n 1) || die "slurmd -C failed"
    cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$hw")
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
    [[ -n $cpus && -n $mem ]] || die "cannot read CPUs/RealMemory from 'slurmd -C': $hw"
    track=$(choose_proctrack)

    tmp=$(mktemp -d)
    render_slurm_conf "$node" "$cpus" "$mem" "$track" >"$tmp/slurm.conf"
    render_cgroup_conf "$track" >"$tmp/cgroup.conf"

    for name in slurmctld slurmd; do
        foreign=$(foreign_pids "$name")
        [[ -z $foreign ]] || die "a $name not started by this script runs (pid $foreign): stop it first"
    done

    ensure_munge

    ctld=$(our_pid slurmctld || true)
    slurmd_pid=$(our_pid slurmd || true)
    if cmp -s "$tmp/slurm.conf" "$SLURM_CONF_FILE" && cmp -s "$tmp/cgroup.conf" "$CGROUP_CONF_FILE"; then
        same=1
    fi
    if ((same)) && [[ -n $ctld && -n $slurmd_pid ]] && cluster_answers; then
        state=$(node_state "$node" || true)
        case $state in
        idle | mixed | allocated | completing)
            rm -rf "$tmp"
            say "already running (slurmctld pid $ctld, slurmd pid $slurmd_pid, node $node $state)"
            return 0
            ;;
        esac
    fi
    if [[ -n $ctld || -n $slurmd_pid ]]; then
        if ((same)); then
            say "restarting our Slurm daemons (not all of them answer)"
        else
            say "configuration changed: restarting our Slurm daemons (running jobs are cancelled)"
        fi
        drain_jobs
        stop_daemons slurmd
        stop_daemons slurmctld
    fi
    mkdir -p "$CONF_DIR"
    install_conf "$tmp/slurm.conf" "$SLURM_CONF_FILE"
    install_conf "$tmp/cgroup.conf" "$CGROUP_CONF_FILE"
    rm -rf "$tmp"

    start_slurm_daemons "$node"
    say "ready in $(since "$t0") s: node $node idle ($cpus CPUs, ${mem} MB), partition $PARTITION," \
        "proctrack/$track, KillWait=$KILLWAIT"
}

cmd_stop() {
    local t0 name any=0
    t0=$(now)
    need_root stop
    check_settings
    take_lock
    mkdir -p "$RUN_DIR"
    for name in slurmctld slurmd munged; do
        our_pid "$name" >/dev/null && any=1
    done
    if ((!any)); then
        rm -f "$RUN_DIR"/*.pid
        say "nothing to stop (no daemon started by this script runs)"
        return 0
    fi
    if our_pid slurmctld >/dev/null || our_pid slurmd >/dev/null; then
        drain_jobs
        stop_daemons slurmd
        kill_job_processes
    fi
    stop_daemons slurmctld munged
    say "stopped in $(since "$t0") s"
}

cmd_status() {
    local name pid foreign
    for name in munged slurmctld slurmd; do
        if pid=$(our_pid "$name"); then
            printf '%s: running, pid %s (started by local-slurm.sh)\n' "$name" "$pid"
        elif foreign=$(foreign_pids "$name") && [[ -n $foreign ]]; then
            printf '%s: running, pid %s (not started by local-slurm.sh)\n' "$name" "$foreign"
        else
            printf '%s: not running\n' "$name"
        fi
    done
    if [[ -r $SLURM_CONF_FILE ]]; then
        printf 'config: %s (%s)\n' "$SLURM_CONF_FILE" \
            "$(grep -E '^(ProctrackType|KillWait)=' "$SLURM_CONF_FILE" | tr '\n' ' ' | sed 's/ $//')"
    fi
    if command -v scontrol >/dev/null && cluster_answers; then
        timeout 5 sinfo || true
        return 0
    fi
    printf 'cluster: not answering\n'
    return 1
}

main() {
    case ${1:-} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    -h | --help | help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
    *)
        printf 'usage: %s start|status|stop\n' "$0" >&2
        exit 2
        ;;
    esac
}

main "$@"
