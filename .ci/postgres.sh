#!/usr/bin/env bash
# Starts (idempotently) a dedicated PostgreSQL cluster for watchbell's tests on 127.0.0.1:54329
# and prints exactly one line on stdout: its URL. Everything else goes to stderr.
#
#   export WATCHBELL_TEST_POSTGRES_URL="$(bash .ci/postgres.sh)"
#
# Debian/Ubuntu (postgresql-common): installs the `postgresql` package when the server binaries
# are absent, creates the cluster `watchbell` with pg_createcluster (the server runs as the
# `postgres` user, also when this script runs as root), a role `watchbell` and a database
# `watchbell_test`.
#
#   bash .ci/postgres.sh stop    # stops that cluster again (`.ci/run` does this when it ends)
set -euo pipefail
exec 3>&1 1>&2

PORT="${WATCHBELL_PG_PORT:-54329}"
CLUSTER=watchbell
ROLE=watchbell
PASSWORD="${WATCHBELL_PG_PASSWORD:-watchbell-ci-only}"
DB=watchbell_test

as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    elif [ "$(id -un)" = postgres ]; then
        "$@"
    else
        sudo -n -u postgres -- "$@"
    fi
}
root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n -- "$@"; fi
}
# Runs a command that leaves a daemon behind (pg_ctlcluster start/restart) with no file descriptor
# of ours but stderr: the server must not inherit fd 3 (the caller's `$(...)` pipe, which would then
# never see end-of-file) nor any other descriptor the caller's caller left open.
daemonize() {
    (
        for fd in /proc/$BASHPID/fd/*; do
            fd="${fd##*/}"
            if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-"; fi
        done
        "$@" </dev/null >&2
    )
}

if [ "${1:-}" = stop ]; then
    command -v pg_lsclusters >/dev/null 2>&1 || exit 0
    pg_lsclusters -h | awk -v c="$CLUSTER" '$2==c && $4 ~ /online/ {print $1}' | while read -r version; do
        echo "postgres.sh: stopping cluster $version/$CLUSTER"
        root pg_ctlcluster "$version" "$CLUSTER" stop -m fast </dev/null
    done
    exit 0
fi

server_installed() {
    command -v pg_createcluster >/dev/null 2>&1 && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1
}

if ! server_installed; then
    echo "postgres.sh: installing PostgreSQL from the distribution's packages"
    daemonize root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    daemonize root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
fi

# The newest installed major version.
VERSION="$(ls /usr/lib/postgresql | sort -n | tail -1)"
[ -x "/usr/lib/postgresql/$VERSION/bin/postgres" ] || { echo "postgres.sh: no server binaries found"; exit 1; }

if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$VERSION $CLUSTER"; then
    echo "postgres.sh: creating cluster $VERSION/$CLUSTER on port $PORT"
    root pg_createcluster "$VERSION" "$CLUSTER" -p "$PORT"
fi
# Settings for a throwaway test cluster (conf.d is included by Debian's postgresql.conf).
CONF_DIR="/etc/postgresql/$VERSION/$CLUSTER/conf.d"
WANT="$(printf "listen_addresses = '127.0.0.1'\nport = %s\nmax_connections = 200\nfsync = off\nsynchronous_commit = off\n" "$PORT")"
if [ "$(cat "$CONF_DIR/watchbell.conf" 2>/dev/null)" != "$WANT" ]; then
    printf '%s\n' "$WANT" | root tee "$CONF_DIR/watchbell.conf" >/dev/null
    if pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1==v && $2==c {print $4}' | grep -q online; then
        daemonize root pg_ctlcluster "$VERSION" "$CLUSTER" restart
    fi
fi

status="$(pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1==v && $2==c {print $4}')"
if [ "$status" != online ]; then
    echo "postgres.sh: starting cluster $VERSION/$CLUSTER"
    daemonize root pg_ctlcluster "$VERSION" "$CLUSTER" start
fi

# Wait until it accepts connections.
for _ in $(seq 1 60); do
    if as_postgres psql -h /var/run/postgresql -p "$PORT" -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
        break
    fi
    sleep 0.5
done

psql_admin() {
    as_postgres psql -h /var/run/postgresql -p "$PORT" -d postgres -v ON_ERROR_STOP=1 -Atq "$@"
}

if [ "$(psql_admin -c "select 1 from pg_roles where rolname = '$ROLE'")" != 1 ]; then
    psql_admin -c "create role $ROLE login password '$PASSWORD'"
else
    psql_admin -c "alter role $ROLE login password '$PASSWORD'"
fi
if [ "$(psql_admin -c "select 1 from pg_database where datname = '$DB'")" != 1 ]; then
    psql_admin -c "create database $DB owner $ROLE"
fi

echo "postgres://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DB" >&3
