#!/usr/bin/env bash
# A single-node Slurm with accounting, all on loopback, for the @pytest.mark.slurm tests.
#
#   .ci/slurm.sh start   install (Debian packages, if missing) and start munge, MariaDB, slurmdbd,
#                        slurmctld and slurmd; wait until the node is idle
#   .ci/slurm.sh stop    cancel this cluster's jobs, stop exactly the processes `start` started
#                        (their PIDs are in $SLURM_CI_DIR/pids) and remove the config files it wrote
#   .ci/slurm.sh status  sinfo and the recorded PIDs
#
# Needs root (Debian 12: slurm-wlm 22.05, MariaDB 10.11). Nothing here is started by an init
# system: every daemon runs in the foreground as a child we record. State, logs and the database
# live in $SLURM_CI_DIR (default /tmp/gmsuite-slurm). Facts behind this: ../../shared/notes/slurm.md.
set -euo pipefail

STATE=${SLURM_CI_DIR:-/tmp/gmsuite-slurm}
PIDS=$STATE/pids
MARK="# written by gmsuite .ci/slurm.sh"
CONF=/etc/slurm/slurm.conf
DBD_CONF=/etc/slurm/slurmdbd.conf
HOST=$(hostname -s)
DB_PORT=${SLURM_CI_DB_PORT:-3307}
PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)

log() { echo "slurm.sh: $*" >&2; }
die() { log "$*"; exit 1; }

install() {
    local missing=()
    for bin in slurmctld slurmd slurmdbd sinfo sacct munged mariadbd mariadb-install-db; do
        command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${PACKAGES[*]} (missing: ${missing[*]})"
    [ "$(id -u)" -eq 0 ] || die "installing needs root"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >"$STATE/apt.log" 2>&1 || die "apt-get update failed (see $STATE/apt.log)"
    apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >>"$STATE/apt.log" 2>&1 \
        || die "apt-get install failed (see $STATE/apt.log)"
}

record() { echo "$1 $2" >>"$PIDS"; }

# start NAME LOG COMMAND...: run COMMAND in the background (foreground mode), record its PID
spawn() {
    local name=$1 logfile=$2
    shift 2
    nohup "$@" </dev/null >>"$logfile" 2>&1 &
    record "$name" $!
    log "started $name (pid $!)"
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local limit=$1 what=$2
    shift 2
    for _ in $(seq 1 $((limit * 4))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.25
    done
    die "$what not ready after ${limit}s (logs in $STATE)"
}

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

start() {
    [ "$(id -u)" -eq 0 ] || die "needs root"
    mkdir -p "$STATE"
    if [ -s "$PIDS" ]; then
        while read -r name pid; do
            alive "$pid" && die "already running ($name pid $pid); run '$0 stop' first"
        done <"$PIDS"
        rm -f "$PIDS"
    fi
    install
    for f in "$CONF" "$DBD_CONF"; do
        if [ -e "$f" ] && ! grep -qF "$MARK" "$f"; then
            die "$f exists and was not written by this script; not touching it"
        fi
    done
    rm -rf "$STATE/ctld" "$STATE/d" "$STATE/mysql" "$STATE"/*.log
    mkdir -p "$STATE/ctld" "$STATE/d" /etc/slurm
    : >"$PIDS"

    # munge: its run folder and key, owned by munge; munged in the foreground as munge
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    chmod 0755 /run/munge
    if [ ! -s /etc/munge/munge.key ]; then
        mungekey --create --keyfile=/etc/munge/munge.key
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    spawn munged "$STATE/munged.log" setpriv --reuid=munge --regid=munge --init-groups munged --foreground
    wait_for 20 munge sh -c 'munge -n | unmunge'

    # MariaDB on 127.0.0.1:$DB_PORT, data in $STATE/mysql
    mariadb-install-db --user=root --datadir="$STATE/mysql" --skip-test-db >"$STATE/mariadb-install.log" 2>&1 \
        || die "mariadb-install-db failed (see $STATE/mariadb-install.log)"
    spawn mariadbd "$STATE/mariadbd.log" mariadbd --user=root --datadir="$STATE/mysql" \
        --socket="$STATE/mysql.sock" --pid-file="$STATE/mariadbd.pid" --port="$DB_PORT" \
        --bind-address=127.0.0.1 --skip-name-resolve --innodb-buffer-pool-size=64M
    wait_for 60 mariadb mariadb --socket="$STATE/mysql.sock" -u root -e 'select 1'
    mariadb --socket="$STATE/mysql.sock" -u root <<SQL
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
SQL

    local cpus mem
    cpus=$(nproc)
    mem=$(free -m | awk '/^Mem:/ {print int($7 * 0.9)}')
    cat >"$DBD_CONF" <<EOF
$MARK
AuthType=auth/munge
DbdHost=$HOST
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/slurmdbd.log
EOF
    chmod 600 "$DBD_CONF"
    cat >"$CONF" <<EOF
$MARK
ClusterName=gmsuite
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MailProg=/bin/true
ReturnToService=2
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    chmod 644 "$CONF"

    spawn slurmdbd "$STATE/slurmdbd.out" slurmdbd -D
    wait_for 60 slurmdbd sacctmgr -n list cluster
    sacctmgr -i add cluster gmsuite >/dev/null 2>&1 || true
    spawn slurmctld "$STATE/slurmctld.out" slurmctld -D -i
    wait_for 60 slurmctld scontrol ping
    spawn slurmd "$STATE/slurmd.out" slurmd -D
    node_idle() { sinfo -h -n "$HOST" -o %T | grep -qE '^(idle|mixed|allocated)'; }
    if ! (wait_for 30 "node $HOST" node_idle 2>/dev/null); then
        scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
        wait_for 30 "node $HOST" node_idle
    fi
    log "up: $(sinfo -h -o '%P %D %T %c CPUs')"
}

stop() {
    if command -v scancel >/dev/null 2>&1 && [ -s "$PIDS" ] && grep -qF "$MARK" "$CONF" 2>/dev/null; then
        scancel --user="$(id -un)" >/dev/null 2>&1 || true  # jobs of this cluster only: it is ours
    fi
    if [ -s "$PIDS" ]; then
        # reverse start order: slurmd, slurmctld, slurmdbd, mariadbd, munged
        tac "$PIDS" | while read -r name pid; do
            if alive "$pid"; then
                kill -TERM "$pid" 2>/dev/null || true
                for _ in $(seq 1 40); do alive "$pid" || break; sleep 0.25; done
                if alive "$pid"; then
                    log "$name (pid $pid) did not stop in 10 s: SIGKILL"
                    kill -KILL "$pid" 2>/dev/null || true
                fi
                log "stopped $name (pid $pid)"
            fi
        done
        rm -f "$PIDS"
    fi
    for f in "$CONF" "$DBD_CONF"; do
        if [ -e "$f" ] && grep -qF "$MARK" "$f"; then rm -f "$f"; fi
    done
}

status() {
    [ -s "$PIDS" ] && while read -r name pid; do
        if alive "$pid"; then echo "$name $pid running"; else echo "$name $pid gone"; fi
    done <"$PIDS"
    sinfo 2>&1 || true
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*) die "usage: $0 start|stop|status" ;;
esac
