#!/usr/bin/env bash
# A single-node SLURM 22.05 with accounting (slurmdbd + MariaDB) on Debian 12,
# for running srlrfr's Snakemake DAG through a real scheduler:
#
#   tools/slurm_local.sh up       # as root: install if missing, configure, start, smoke-test
#   tools/slurm_local.sh status
#   tools/slurm_local.sh down     # stop exactly the daemons `up` started
#
# Daemons are started by hand, not through apt/systemd (service starts are denied
# in containers by policy-rc.d). Each one runs in the foreground of its own
# session and its PID is recorded under $STATE; `down` stops those PIDs and
# nothing else. A daemon that already answers (e.g. a system munged) is reused
# and left alone. `up` is idempotent: run again, it changes nothing that is
# already right, and restarts its own SLURM daemons only when their
# configuration changed (e.g. after an update of this script).
set -euo pipefail

export PATH="/usr/sbin:/sbin:$PATH"
STATE=/run/srlrfr-slurm          # PID files of what `up` started
LOG_DIR=/var/log/slurm
CONF=/etc/slurm/slurm.conf       # where every SLURM client looks by default
DBD_CONF=/etc/slurm/slurmdbd.conf
CLUSTER=srlrfr                   # these three names are what
PARTITION=local                  # workflow/profiles/slurm/config.yaml
ACCOUNT=srlrfr                   # asks for
DB=slurm_acct_db
PACKAGES=(slurm-wlm munge slurmdbd mariadb-server)
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)   # start order
MARK="# Written by srlrfr tools/slurm_local.sh; rewritten by every 'up'."
HOST=$(hostname)

CONF_CHANGED=0                   # set by write_conf when a file's content changed
log() { printf '[slurm_local] %s\n' "$*"; }
die() { printf 'slurm_local: %s\n' "$*" >&2; exit 1; }

T_START=$EPOCHREALTIME
T_PHASE=$EPOCHREALTIME
phase() {  # print how long the phase that just ended took
    local now=$EPOCHREALTIME
    log "$(awk -v a="$T_PHASE" -v b="$now" -v n="$1" 'BEGIN { printf "%-22s %6.1f s", n, b - a }')"
    T_PHASE=$now
}

# --- PIDs ---------------------------------------------------------------------

ours() {  # ours NAME: the PID we recorded for NAME, if that process still runs as NAME
    local f="$STATE/$1.pid" pid
    [[ -f $f ]] || return 1
    pid=$(<"$f")
    # The command name guards against a recycled PID.
    [[ $pid =~ ^[0-9]+$ && -d /proc/$pid && $(<"/proc/$pid/comm") == "$1" ]] || return 1
    echo "$pid"
}

launch() {  # launch NAME CMD...: run CMD (which must exec NAME) in its own session
    local name=$1; shift
    # Not a process-group leader here, so setsid execs in place and $! is the daemon.
    setsid "$@" </dev/null >>"$LOG_DIR/$name.out" 2>&1 &
    echo $! >"$STATE/$name.pid"
}

wait_for() {  # wait_for NAME SECONDS CMD...: poll CMD until it succeeds
    local name=$1 secs=$2; shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        # Only that the PID lives: right after launch it may not have exec'ed NAME yet.
        if [[ -f $STATE/$name.pid && ! -d /proc/$(<"$STATE/$name.pid") ]]; then
            tail -n 20 "$LOG_DIR/$name.out" "$LOG_DIR/$name.log" 2>/dev/null >&2 || true
            die "$name exited during start-up; see $LOG_DIR/$name.{out,log}"
        fi
        ((SECONDS < deadline)) || die "$name not ready after ${secs}s; see $LOG_DIR/$name.{out,log}"
        sleep 0.5
    done
}

start() {  # start NAME CMD...: start NAME unless it already answers (NAME_ok)
    local name=$1 probe=${1}_ok; shift
    if "$probe" >/dev/null 2>&1; then
        if ours "$name" >/dev/null; then log "$name already running (ours, PID $(ours "$name"))"
        else log "$name already running (not ours: left alone by 'down')"; fi
        return
    fi
    rm -f "$STATE/$name.pid"
    launch "$name" "$@"
    wait_for "$name" 60 "$probe"
    log "$name started, PID $(<"$STATE/$name.pid")"
}

# Probes NAME_ok: does the service answer?
munged_ok() { munge -n </dev/null | unmunge; }
mariadbd_ok() { mysqladmin --silent ping; }
slurmdbd_ok() { timeout 10 sacctmgr -n show cluster; }
slurmctld_ok() { timeout 10 scontrol ping | grep -q 'is UP'; }
slurmd_ok() { timeout 10 scontrol show slurmd; }   # asks the local slurmd itself

# --- configuration ---------------------------------------------------------------

write_conf() {  # write_conf PATH MODE OWNER < CONTENT; never overwrites a foreign file
    local path=$1 mode=$2 owner=$3 tmp
    if [[ -e $path ]] && [[ $(head -n 1 "$path") != "$MARK" ]]; then
        die "$path exists and was not written by this script; move it away to let 'up' write its own"
    fi
    tmp=$(mktemp "$path.XXXXXX")
    { echo "$MARK"; cat; } >"$tmp"
    chmod "$mode" "$tmp"
    chown "$owner" "$tmp"
    if cmp -s "$tmp" "$path"; then rm -f "$tmp"; return; fi
    mv -f "$tmp" "$path"
    log "wrote $path"
    CONF_CHANGED=1
}

db_password() {  # the slurm DB user's password: kept from an earlier run, else new
    local pw=""
    [[ -f $DBD_CONF ]] && pw=$(sed -n 's/^StoragePass=//p' "$DBD_CONF")
    [[ -n $pw ]] || pw=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    echo "$pw"
}

write_configs() {
    local node cpus mem ctld_host=$HOST node_addr=""
    # The node's real CPUs and memory: a NodeName line larger than the machine
    # makes slurmctld drain the node ("Low RealMemory").
    node=$(slurmd -C | head -n 1)
    [[ $node == "NodeName=$HOST "* ]] || die "'slurmd -C' printed '$node', expected NodeName=$HOST"
    cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$node")
    mem=$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
    # SLURM resolves these names to addresses; fall back to loopback if `hostname` has no entry.
    if ! getent hosts "$HOST" >/dev/null; then
        log "hostname '$HOST' does not resolve: using 127.0.0.1 for it"
        ctld_host="$HOST(127.0.0.1)" node_addr=" NodeAddr=127.0.0.1"
    fi
    install -d -o slurm -g slurm -m 755 "$LOG_DIR" /var/spool/slurmctld
    install -d -o root -g root -m 755 /var/spool/slurmd /etc/slurm

    write_conf "$CONF" 644 root:root <<EOF
ClusterName=$CLUSTER
# Must be this machine's \`hostname\`, as must NodeName below.
SlurmctldHost=$ctld_host
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
# The daemons' own PID files are this script's records (same PIDs). In /run they
# would outlive 'down', and slurmctld's package scripts then fail on removal.
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
# No systemd/cgroup delegation in containers: track processes by parent PID and
# do not confine tasks (jobs can then use more than they asked for).
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# Share the node between jobs by cores and memory, so small jobs run side by side.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# A job without --mem would otherwise hold the whole node's memory.
DefMemPerCPU=$((mem / cpus))
# A node that was down (e.g. stopped by 'down') rejoins once its slurmd registers.
ReturnToService=2
# Accounting through slurmdbd: snakemake-executor-plugin-slurm reads job states
# with sacct, which answers nothing without it.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
# Keep the comment the plugin gives each job (rule_<rule>_wildcards_<...>):
# without this flag sacct's Comment column stays empty.
AccountingStoreFlags=job_comment
# Sample each step's processes every 2 s, so sacct has MaxRSS and AveCPU for
# every job (srlrfr slurm-report). linux, not cgroup: no cgroup delegation here.
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=2
# From \`slurmd -C\`.
$node$node_addr State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

    # slurmdbd refuses this file unless it belongs to SlurmUser with mode 600 (it holds a password).
    write_conf "$DBD_CONF" 600 slurm:slurm <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
LogFile=$LOG_DIR/slurmdbd.log
PidFile=$STATE/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=$DB
StorageUser=slurm
StoragePass=$DB_PASS
EOF
}

# --- phases of `up` --------------------------------------------------------------

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == "install ok installed" ]] || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then log "packages already installed"; return; fi
    log "installing ${missing[*]} (log: /var/log/slurm_local-apt.log)"
    export DEBIAN_FRONTEND=noninteractive
    # Package lists may be absent or stale on a fresh image.
    apt-get update -q >/var/log/slurm_local-apt.log 2>&1
    # apt may fail to start the services (policy-rc.d); they are started below.
    apt-get install -y -q --no-install-recommends "${missing[@]}" >>/var/log/slurm_local-apt.log 2>&1 \
        || { tail -n 20 /var/log/slurm_local-apt.log >&2; die "apt-get install failed; see /var/log/slurm_local-apt.log"; }
}

start_munge() {
    if ! munged_ok >/dev/null 2>&1; then
        # The package normally creates the key; every node of a real cluster needs the same one.
        [[ -s /etc/munge/munge.key ]] || mungekey --create --keyfile=/etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key
        chmod 600 /etc/munge/munge.key
        install -d -o munge -g munge -m 755 /run/munge
    fi
    # As the munge user (not root, which needs --force); setpriv execs, keeping the PID.
    start munged setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged -F
}

start_mariadb() {
    if ! mariadbd_ok >/dev/null 2>&1; then
        install -d -o mysql -g mysql -m 755 /run/mysqld
        [[ -d /var/lib/mysql/mysql ]] || mariadb-install-db --user=mysql >/dev/null
    fi
    # mariadbd itself rather than mysqld_safe: mysqld_safe ignores SIGTERM and
    # restarts the server, so its PID would not stop it.
    start mariadbd /usr/sbin/mariadbd --user=mysql
    # Root logs in through the unix socket; slurmdbd with the password it is given.
    mysql <<EOF
CREATE DATABASE IF NOT EXISTS $DB;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON $DB.* TO 'slurm'@'localhost';
EOF
}

register() {  # the cluster, an account, and root (plus a sudo caller) in it
    local user
    [[ -n $(sacctmgr -n -P show cluster "$CLUSTER" format=cluster) ]] \
        || sacctmgr -i add cluster "$CLUSTER" >/dev/null
    [[ -n $(sacctmgr -n -P show account "$ACCOUNT" format=account) ]] \
        || sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" Description="srlrfr runs" Organization=srlrfr >/dev/null
    for user in root ${SUDO_USER:-}; do
        [[ -n $(sacctmgr -n -P show assoc where cluster="$CLUSTER" account="$ACCOUNT" user="$user" format=user) ]] \
            || sacctmgr -i add user "$user" account="$ACCOUNT" cluster="$CLUSTER" >/dev/null
    done
}

node_state() { sinfo -h -n "$HOST" -o %T 2>/dev/null; }

wait_node_idle() {
    local deadline=$((SECONDS + 60)) state
    while state=$(node_state); [[ ! $state =~ ^(idle|mixed|allocated)$ ]]; do
        # Left down or drained by an unclean stop: put it back in service.
        if [[ $state =~ ^(down|drained|draining) ]]; then
            scontrol update nodename="$HOST" state=resume 2>/dev/null || true
        fi
        ((SECONDS < deadline)) || die "node $HOST is '$state' after 60s; see $LOG_DIR/slurmctld.log and slurmd.log"
        sleep 0.5
    done
}

smoke_test() {  # a job runs, and sacct (what the Snakemake plugin polls) knows it
    local out id
    # shellcheck disable=SC2016  # expanded inside the job
    out=$(timeout 60 srun -N1 -n1 -t 1 -A "$ACCOUNT" bash -c 'echo "$SLURM_JOB_ID $(hostname)"') \
        || die "srun hostname failed; see $LOG_DIR/slurmctld.log and slurmd.log"
    id=${out%% *}
    [[ ${out#* } == "$HOST" ]] || die "srun ran on '${out#* }', expected $HOST"
    local deadline=$((SECONDS + 30))
    until [[ -n $(sacct -n -X -j "$id" -o State 2>/dev/null | tr -d ' ') ]]; do
        ((SECONDS < deadline)) || die "sacct does not know job $id after 30s; see $LOG_DIR/slurmdbd.log"
        sleep 0.5
    done
    log "srun hostname: $HOST (job $id, $(sacct -n -X -j "$id" -o State | tr -d ' ') in sacct)"
}

restart_changed() {  # SLURM daemons read their configuration at start: stop ours to restart them
    local name i
    for ((i = ${#DAEMONS[@]} - 1; i >= 2; i--)); do   # slurmd, slurmctld, slurmdbd
        name=${DAEMONS[i]}
        if ours "$name" >/dev/null; then
            log "configuration changed: restarting $name"
            stop "$name"
        elif "${name}_ok" >/dev/null 2>&1; then
            log "warning: $name runs (not started here) with the old configuration; restart it to apply the new one"
        fi
    done
}

up() {
    install -d -m 755 "$STATE"
    install_packages;                 phase "packages"
    DB_PASS=$(db_password)
    write_configs
    ((CONF_CHANGED)) && restart_changed;  phase "configuration"
    start_munge;                      phase "munged"
    start_mariadb;                    phase "mariadb"
    start slurmdbd /usr/sbin/slurmdbd -D
    register;                         phase "slurmdbd + accounts"
    start slurmctld /usr/sbin/slurmctld -D
    start slurmd /usr/sbin/slurmd -D
    wait_node_idle;                   phase "slurmctld + slurmd"
    smoke_test;                       phase "srun smoke test"
    T_PHASE=$T_START;                 phase "up, total"
    log "partition '$PARTITION', account '$ACCOUNT', cluster '$CLUSTER' on $HOST"
}

stop() {  # stop NAME: TERM (then KILL after 30 s) the PID recorded for NAME
    local pid
    if pid=$(ours "$1"); then
        kill -TERM "$pid"
        for _ in $(seq 60); do [[ -d /proc/$pid ]] || break; sleep 0.5; done
        if [[ -d /proc/$pid ]]; then log "$1 ignored SIGTERM: SIGKILL"; kill -KILL "$pid"; fi
        log "stopped $1 (PID $pid)"
    fi
    rm -f "$STATE/$1.pid"
}

down() {
    local ids i
    # Jobs left running would orphan their slurmstepd processes.
    if ours slurmctld >/dev/null && ids=$(squeue -h -o %A 2>/dev/null) && [[ -n $ids ]]; then
        log "cancelling jobs: ${ids//$'\n'/ }"
        # shellcheck disable=SC2086  # one argument per job ID
        scancel $ids || true
        for _ in $(seq 60); do [[ -z $(squeue -h -o %A 2>/dev/null) ]] && break; sleep 0.5; done
    fi
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do stop "${DAEMONS[i]}"; done
    rmdir "$STATE" 2>/dev/null || true
}

status() {
    local name pid
    for name in "${DAEMONS[@]}"; do
        if pid=$(ours "$name"); then log "$name: running, PID $pid (ours)"
        elif "${name}_ok" >/dev/null 2>&1; then
            log "$name: answers, not started by this script"
        else log "$name: not running"; fi
    done
    if slurmctld_ok >/dev/null 2>&1; then
        sinfo
        sacct -n -X -S now-1hours -o JobID,JobName%20,Account,State | tail -n 5 || true
    fi
}

[[ $EUID -eq 0 ]] || die "run as root: it installs packages and starts system daemons"
case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) die "usage: $0 up|down|status" ;;
esac
