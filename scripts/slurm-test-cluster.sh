#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, for aifactory's tests and benchmarks.
#
#   scripts/slurm-test-cluster.sh start   # installs (as root, if missing) and starts it;
#                                         # the last line printed is the --slurm-url
#   scripts/slurm-test-cluster.sh stop
#   scripts/slurm-test-cluster.sh status
#   scripts/slurm-test-cluster.sh ctld-stop | ctld-start   # an outage of slurmctld, for tests
#   scripts/slurm-test-cluster.sh dbd-stop | dbd-start     # an outage of slurmdbd, for tests
#
# munge, slurmctld and slurmd (8 fake H100 GPUs: empty device files, AutoDetect off) run as
# root; so does slurmdbd, the accounting daemon, which keeps accounts and associations in
# a MariaDB of its own (datadir $DIR/mysql, on 127.0.0.1:$DB_PORT); the user `slurm` is
# an operator there, so that it can create accounts through slurmrestd; slurmrestd runs as the unprivileged user `slurm` (it refuses root) on a unix socket
# with rest_auth/local, so jobs submitted through it run as `slurm`. A second slurmrestd
# listens on http://127.0.0.1:$HTTP_PORT with rest_auth/jwt (slurmctld takes auth/jwt as
# its alternative authentication, with a random HS256 key); `start` leaves a token for the
# user `slurm` in $DIR/rest/jwt-token and the address in $DIR/rest/http-url. Everything it writes
# lives under $AIFACTORY_SLURM_DIR (default /tmp/aifactory-slurm) except the configuration,
# which goes where Slurm's tools look for it (/etc/slurm).
set -euo pipefail

DIR="${AIFACTORY_SLURM_DIR:-/tmp/aifactory-slurm}"
# Debian's Slurm by default; AIFACTORY_SLURM_PREFIX=/opt/slurm24 runs one built from
# source there instead (configuration in $PREFIX/etc), for newer API versions.
PREFIX="${AIFACTORY_SLURM_PREFIX:-/usr}"
SBIN="$PREFIX/sbin"
if [[ "$PREFIX" == /usr ]]; then CONF_DIR=/etc/slurm; else CONF_DIR="$PREFIX/etc"; fi
export PATH="$PREFIX/bin:$PATH"
HOST="$(hostname -s)"
SOCKET="$DIR/rest/slurmrestd.sock"
REST_USER=slurm
HTTP_PORT="${AIFACTORY_SLURM_HTTP_PORT:-6820}"
DBD_PORT="${AIFACTORY_SLURMDBD_PORT:-6819}"
DB_PORT="${AIFACTORY_SLURM_DB_PORT:-6830}"
# MariaDB runs as `mysql`: its socket, pid file and log live in a directory of its own.
DB_RUN="$DIR/mysql-run"
DB_SOCKET="$DB_RUN/mysqld.sock"
JWT_KEY="$DIR/jwt_hs256.key"
CLUSTER=aifactory-test

log() { echo "slurm-test-cluster: $*" >&2; }

install_packages() {
    local missing=() wanted=(munge mariadb-server)
    # A Slurm built elsewhere brings its own daemons and plugins.
    [[ "$PREFIX" != /usr ]] || wanted+=(slurmctld slurmd slurmrestd slurm-client slurmdbd slurm-wlm-mysql-plugin)
    for p in "${wanted[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if ((${#missing[@]})); then
        [[ $(id -u) -eq 0 ]] || { log "missing ${missing[*]}: run as root to install them"; exit 1; }
        log "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

write_config() {
    mkdir -p "$DIR"/{state,spool,gpus,log,rest} "$CONF_DIR"
    chmod 755 "$DIR"
    chown "$REST_USER" "$DIR/rest"
    if [[ ! -s "$JWT_KEY" ]]; then
        (umask 077 && head -c 32 /dev/urandom >"$JWT_KEY")
    fi
    if [[ ! -s "$DIR/db-password" ]]; then
        (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$DIR/db-password")
    fi
    (
        umask 077
        cat >"$CONF_DIR/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$JWT_KEY
DbdHost=$HOST
DbdPort=$DBD_PORT
SlurmUser=root
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$(cat "$DIR/db-password")
StorageLoc=slurm_acct_db
EOF
    )
    # Character devices (null's numbers) so that slurmd accepts them; no GPU behind them.
    for i in 0 1 2 3 4 5 6 7; do
        [[ -c "$DIR/gpus/nvidia$i" ]] || { rm -f "$DIR/gpus/nvidia$i"; mknod -m 666 "$DIR/gpus/nvidia$i" c 1 3; }
    done
    # The test machine has few cores: declare more (config_overrides) so that eight
    # one-GPU jobs can run side by side; memory is not scheduled.
    cat >"$CONF_DIR/slurm.conf" <<EOF
ClusterName=$CLUSTER
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$JWT_KEY
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
SchedulerType=sched/backfill
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$HOST
AccountingStoragePort=$DBD_PORT
KillWait=5
MinJobAge=600
NodeName=$HOST CPUs=64 RealMemory=64000 Gres=gpu:h100:8 State=UNKNOWN
PartitionName=gpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    cat >"$CONF_DIR/gres.conf" <<EOF
AutoDetect=off
NodeName=$HOST Name=gpu Type=h100 File=$DIR/gpus/nvidia[0-7]
EOF
}

# A day-long token for the user slurm, issued by slurmctld (needs root or SlurmUser).
write_token() {
    local token
    token=$(scontrol token username="$REST_USER" lifespan=86400 | sed -n 's/^SLURM_JWT=//p')
    [[ -n "$token" ]] || { log "scontrol token gave no token"; exit 1; }
    printf '%s\n' "$token" >"$DIR/rest/jwt-token"
    chmod 644 "$DIR/rest/jwt-token"
    echo "http://127.0.0.1:$HTTP_PORT" >"$DIR/rest/http-url"
}

# The slurmctld and slurmdbd APIs: one plugin each per version up to 23.02, one plugin
# each for all the versions (data parsers) since 23.11.
rest_plugins() {
    local version major minor
    version=$("$SBIN/slurmctld" -V | awk '{print $2}')
    major=${version%%.*}
    minor=${version#*.}
    minor=${minor%%.*}
    if ((major < 23)); then
        echo openapi/v0.0.38,openapi/dbv0.0.38
    elif ((major == 23 && 10#$minor < 11)); then
        echo openapi/v0.0.39,openapi/dbv0.0.39
    else
        echo openapi/slurmctld,openapi/slurmdbd
    fi
}

running() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_munge() {
    if pgrep -x munged >/dev/null; then return; fi
    [[ -s /etc/munge/munge.key ]] || { /usr/sbin/mungekey --create >/dev/null 2>&1 || true; }
    chown munge:munge /etc/munge/munge.key 2>/dev/null || true
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    runuser -u munge -- /usr/sbin/munged --force
}

wait_for() { # what, seconds, command...
    local what=$1 seconds=$2
    shift 2
    for _ in $(seq $((seconds * 10))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    log "$what did not come up; logs in $DIR/log"
    tail -n 20 "$DIR"/log/*.log "$DB_RUN"/*.log >&2 || true
    exit 1
}

# The accounting database: a MariaDB of the cluster's own, initialised on first start.
start_mariadb() {
    running "$DB_RUN/mariadb.pid" && return
    mkdir -p "$DB_RUN"
    chown mysql:mysql "$DB_RUN"
    if [[ ! -d "$DIR/mysql/mysql" ]]; then
        mkdir -p "$DIR/mysql"
        chown mysql:mysql "$DIR/mysql"
        mariadb-install-db --user=mysql --datadir="$DIR/mysql" --skip-test-db \
            --auth-root-authentication-method=socket >"$DIR/log/mariadb-install.log" 2>&1 ||
            { tail -n 20 "$DIR/log/mariadb-install.log" >&2; exit 1; }
        # A new database gives the cluster a new id: slurmctld's saved one (from a run
        # before there was accounting) would stop it.
        rm -f "$DIR/state/clustername"
    fi
    (
        cd "$DIR"
        setsid mariadbd --no-defaults --user=mysql --datadir="$DIR/mysql" --socket="$DB_SOCKET" \
            --bind-address=127.0.0.1 --port="$DB_PORT" --pid-file="$DB_RUN/mariadb.pid" \
            --log-error="$DB_RUN/mariadb.log" --innodb-buffer-pool-size=64M >/dev/null 2>&1 &
    )
    wait_for mariadb 60 mariadb --no-defaults --socket="$DB_SOCKET" -e "select 1"
    mariadb --no-defaults --socket="$DB_SOCKET" -e "
        CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$(cat "$DIR/db-password")';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
}

# slurmdbd, with the cluster and the user `slurm` (an operator, under the account
# `aifactory`) registered.
start_slurmdbd() {
    running "$DIR/slurmdbd.pid" || "$SBIN/slurmdbd"
    wait_for slurmdbd 30 sacctmgr -n show cluster
    if [[ -z "$(sacctmgr -n -P show cluster "$CLUSTER" format=cluster)" ]]; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null
    fi
    if [[ -z "$(sacctmgr -n -P show user "$REST_USER" format=user)" ]]; then
        sacctmgr -i add account aifactory cluster="$CLUSTER" description="aifactory tests" organization=aifactory >/dev/null
        sacctmgr -i add user "$REST_USER" account=aifactory cluster="$CLUSTER" adminlevel=Operator >/dev/null
    fi
}

start() {
    install_packages
    write_config
    start_munge
    wait_for munge 10 munge -n
    start_mariadb
    start_slurmdbd
    running "$DIR/slurmctld.pid" || "$SBIN/slurmctld" -i
    wait_for slurmctld 30 scontrol ping
    running "$DIR/slurmd.pid" || "$SBIN/slurmd"
    wait_for slurmd 30 bash -c "sinfo -h -N -o %t | grep -qE '^(idle|mix|alloc)'"
    if ! running "$DIR/slurmrestd.pid"; then
        rm -f "$SOCKET"
        # rest_auth/local: the caller is whoever runs slurmrestd; it refuses root.
        (
            cd "$DIR"
            setsid runuser -u "$REST_USER" -- "$SBIN/slurmrestd" -a rest_auth/local -s "$(rest_plugins)" \
                "unix:$SOCKET" >"$DIR/log/slurmrestd.log" 2>&1 &
            echo $! >"$DIR/slurmrestd.pid"
        )
    fi
    wait_for slurmrestd 30 test -S "$SOCKET"
    chmod 666 "$SOCKET"
    if ! running "$DIR/slurmrestd-jwt.pid"; then
        (
            cd "$DIR"
            # SLURM_JWT=daemon: slurmrestd then speaks auth/jwt to slurmctld, passing each
            # request's token through.
            setsid runuser -u "$REST_USER" -- env SLURM_JWT=daemon "$SBIN/slurmrestd" -a rest_auth/jwt -s "$(rest_plugins)" \
                "127.0.0.1:$HTTP_PORT" >"$DIR/log/slurmrestd-jwt.log" 2>&1 &
            echo $! >"$DIR/slurmrestd-jwt.pid"
        )
    fi
    wait_for "slurmrestd (jwt)" 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$HTTP_PORT"
    write_token
    log "up: $(sinfo -h -N -o '%N %t %G')"
    echo "unix:$SOCKET"
}

stop() {
    # Only what this script started, found by its pid files: another Slurm on the machine
    # (or one started from another $AIFACTORY_SLURM_DIR) is left alone. Jobs first, so that
    # their slurmstepd end with them.
    if running "$DIR/slurmctld.pid"; then
        squeue -h -o %i 2>/dev/null | xargs -r scancel 2>/dev/null || true
    fi
    local groups=() pids=() p
    # Each slurmrestd was started by setsid, so runuser and slurmrestd form a process group
    # led by the recorded pid.
    for d in slurmrestd slurmrestd-jwt; do
        if running "$DIR/$d.pid"; then groups+=("$(cat "$DIR/$d.pid")"); fi
    done
    for f in "$DIR/slurmd.pid" "$DIR/slurmctld.pid" "$DIR/slurmdbd.pid" "$DB_RUN/mariadb.pid"; do
        if running "$f"; then pids+=("$(cat "$f")"); fi
    done
    for p in "${groups[@]}"; do kill -- "-$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    # Gone before returning: another Slurm may start next on the same ports.
    for _ in $(seq 100); do
        local alive=
        for p in "${groups[@]}" "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [[ -n "$alive" ]] || break
        sleep 0.1
    done
    for p in "${groups[@]}"; do kill -9 -- "-$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -f "$SOCKET" "$DIR"/*.pid
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    ctld-stop)
        running "$DIR/slurmctld.pid" && kill "$(cat "$DIR/slurmctld.pid")"
        for _ in $(seq 50); do running "$DIR/slurmctld.pid" || break; sleep 0.1; done
        ;;
    ctld-start)
        running "$DIR/slurmctld.pid" || "$SBIN/slurmctld"
        wait_for slurmctld 30 scontrol ping
        wait_for slurmd 30 bash -c "sinfo -h -N -o %t | grep -qE '^(idle|mix|alloc)'"
        # 22.05 can keep counting the GPUs of jobs that ended during the outage as used
        # (GresUsed stays at 8 with no job running); a reconfigure recounts them.
        scontrol reconfigure
        ;;
    dbd-stop)
        running "$DIR/slurmdbd.pid" && kill "$(cat "$DIR/slurmdbd.pid")"
        for _ in $(seq 50); do running "$DIR/slurmdbd.pid" || break; sleep 0.1; done
        ;;
    dbd-start) start_slurmdbd ;;
    status) sinfo -N -o '%N %t %G' && test -S "$SOCKET" && echo "unix:$SOCKET" ;;
    *) echo "usage: $0 start|stop|status|ctld-stop|ctld-start|dbd-stop|dbd-start" >&2; exit 2 ;;
esac
