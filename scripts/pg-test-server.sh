#!/usr/bin/env bash
# A throwaway PostgreSQL server for the test suite: start|stop|url|status.
#
# The data directory lives outside the repository (/tmp/nbflow-pgtest-<uid>-<hash of repo path>)
# because, run as root, the server runs as the `postgres` user, who cannot write into a root-owned
# checkout. Only the URL goes to stdout, so callers can capture it; everything else goes to stderr.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
HASH="$(printf '%s' "$REPO" | sha1sum | cut -c1-10)"
BASE="${NBFLOW_PGTEST_DIR:-/tmp/nbflow-pgtest-$(id -u)-$HASH}"
PGDATA_DIR="$BASE/data"
PORT_FILE="$BASE/port"
LOG_FILE="$BASE/server.log"
LOCK_FILE="$BASE.lock"
NAME=pg-test-server
# shellcheck source=scripts/test-server-lib.sh
. "$REPO/scripts/test-server-lib.sh"

pg_bin() {
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then printf '%s\n' "$dir"; fi
}

# Run a PostgreSQL binary as the user that owns the data directory.
run_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

url() { printf 'postgresql+psycopg://postgres@127.0.0.1:%s/postgres\n' "$(cat "$PORT_FILE")"; }

is_running() {
    local bin="$1"
    [ -f "$PGDATA_DIR/PG_VERSION" ] && run_pg timeout 30 "$bin/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1
}

init_cluster() {
    local bin="$1"
    say "creating a cluster in $PGDATA_DIR"
    rm -rf "$PGDATA_DIR"
    mkdir -p "$PGDATA_DIR"
    if [ "$(id -u)" -eq 0 ]; then chown -R postgres:postgres "$BASE"; fi
    chmod 700 "$PGDATA_DIR"
    run_pg timeout 120 "$bin/initdb" -D "$PGDATA_DIR" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C >&2 || die "initdb failed"
    # Only loopback TCP, trusted: this server holds nothing but throwaway test databases.
    run_pg sh -c "printf 'local all all trust\nhost all all 127.0.0.1/32 trust\n' > '$PGDATA_DIR/pg_hba.conf'"
}

start() {
    local bin port
    bin="$(pg_bin)"
    if [ -z "$bin" ]; then
        apt_install PostgreSQL postgresql
        bin="$(pg_bin)"
        [ -n "$bin" ] || die "PostgreSQL was installed but no initdb was found under /usr/lib/postgresql/*/bin"
    fi
    if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
        die "running as root, but there is no 'postgres' user to run the server as"
    fi
    mkdir -p "$BASE"
    if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$BASE"; fi
    if is_running "$bin" && [ -f "$PORT_FILE" ]; then
        url
        return 0
    fi
    [ -f "$PGDATA_DIR/PG_VERSION" ] || init_cluster "$bin"
    port="$(pick_port)"
    say "starting PostgreSQL ($bin) on 127.0.0.1:$port"
    ( close_inherited_fds
      run_pg timeout 90 "$bin/pg_ctl" -D "$PGDATA_DIR" -l "$LOG_FILE" -w -t 60 \
        -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories='$BASE' -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start </dev/null >&2 ) || { tail -n 20 "$LOG_FILE" >&2 2>/dev/null || true; die "the server did not start (log: $LOG_FILE)"; }
    url
}

stop() {
    local bin
    bin="$(pg_bin)"
    if [ -n "$bin" ] && is_running "$bin"; then
        run_pg timeout 90 "$bin/pg_ctl" -D "$PGDATA_DIR" -w -t 60 -m fast stop >&2
    else
        say "not running"
    fi
}

status() {
    local bin
    bin="$(pg_bin)"
    if [ -n "$bin" ] && is_running "$bin" && [ -f "$PORT_FILE" ]; then
        say "running in $PGDATA_DIR"
        url
    else
        say "not running"
        return 3
    fi
}

server_main "$@"
