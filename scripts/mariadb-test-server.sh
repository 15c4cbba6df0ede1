#!/usr/bin/env bash
# A throwaway MariaDB server for the test suite: start|stop|url|status.
#
# Like scripts/pg-test-server.sh: the data directory lives outside the repository
# (/tmp/nbflow-mariadbtest-<uid>-<hash of repo path>) and, run as root, the server runs as the
# `mysql` user. Only the URL goes to stdout, so callers can capture it; everything else goes to
# stderr. The URL names the database nbflow_test; tests create databases of their own beside it.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
HASH="$(printf '%s' "$REPO" | sha1sum | cut -c1-10)"
BASE="${NBFLOW_MARIADBTEST_DIR:-/tmp/nbflow-mariadbtest-$(id -u)-$HASH}"
DATA_DIR="$BASE/data"
PORT_FILE="$BASE/port"
PID_FILE="$BASE/mariadbd.pid"
SOCKET="$BASE/mariadbd.sock"
LOG_FILE="$BASE/server.log"
LOCK_FILE="$BASE.lock"
NAME=mariadb-test-server
# shellcheck source=scripts/test-server-lib.sh
. "$REPO/scripts/test-server-lib.sh"

server_bin() { command -v mariadbd || { [ -x /usr/sbin/mariadbd ] && echo /usr/sbin/mariadbd; } || true; }

url() { printf 'mysql+pymysql://root@127.0.0.1:%s/nbflow_test\n' "$(cat "$PORT_FILE")"; }

client() { mariadb --no-defaults --protocol=tcp -h 127.0.0.1 -P "$(cat "$PORT_FILE")" -u root "$@"; }

is_running() {
    [ -f "$PID_FILE" ] && [ -f "$PORT_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null \
        && client -e 'SELECT 1' >/dev/null 2>&1
}

init_data() {
    say "creating a data directory in $DATA_DIR"
    rm -rf "$DATA_DIR"
    mkdir -p "$DATA_DIR"
    if [ "$(id -u)" -eq 0 ]; then chown -R mysql:mysql "$BASE"; fi
    timeout 300 mariadb-install-db --no-defaults --datadir="$DATA_DIR" --user=mysql \
        --auth-root-authentication-method=normal >"$BASE/install.log" 2>&1 \
        || { tail -n 20 "$BASE/install.log" >&2; die "mariadb-install-db failed"; }
}

launch() {
    local bin="$1" port="$2"
    rm -f "$PID_FILE"
    ( close_inherited_fds
      cd /
      # utf8mb4 with a binary collation: ids compare as the bytes they are, as on SQLite and PostgreSQL
      setsid "$bin" --no-defaults --datadir="$DATA_DIR" --user=mysql --port="$port" --bind-address=127.0.0.1 \
        --socket="$SOCKET" --pid-file="$PID_FILE" --skip-name-resolve --log-error="$LOG_FILE" \
        --character-set-server=utf8mb4 --collation-server=utf8mb4_bin --max-connections=500 \
        --innodb-flush-log-at-trx-commit=0 --innodb-buffer-pool-size=64M --skip-log-bin \
        </dev/null >/dev/null 2>&1 & )
    local waited=0
    while [ "$waited" -lt 120 ]; do
        if client -e 'SELECT 1' >/dev/null 2>&1; then return 0; fi
        # a server that exited (its port taken meanwhile) leaves no live pid
        if [ "$waited" -gt 10 ] && ! pgrep -f -- "--pid-file=$PID_FILE" >/dev/null 2>&1; then return 1; fi
        sleep 0.5; waited=$((waited + 1))
    done
    return 1
}

start() {
    local bin port attempt
    bin="$(server_bin)"
    if [ -z "$bin" ]; then
        apt_install MariaDB mariadb-server
        bin="$(server_bin)"
        [ -n "$bin" ] || die "MariaDB was installed but no mariadbd was found"
    fi
    if [ "$(id -u)" -eq 0 ] && ! id mysql >/dev/null 2>&1; then
        die "running as root, but there is no 'mysql' user to run the server as"
    fi
    mkdir -p "$BASE"
    if [ "$(id -u)" -eq 0 ]; then chown mysql:mysql "$BASE"; fi
    if is_running; then
        url
        return 0
    fi
    [ -d "$DATA_DIR/mysql" ] || init_data
    for attempt in 1 2 3 4 5; do
        port="$(pick_port)"
        say "starting MariaDB ($bin) on 127.0.0.1:$port"
        if launch "$bin" "$port"; then
            client -e 'CREATE DATABASE IF NOT EXISTS nbflow_test CHARACTER SET utf8mb4 COLLATE utf8mb4_bin' >&2
            url
            return 0
        fi
        tail -n 5 "$LOG_FILE" >&2 2>/dev/null || true
        say "the server did not start on port $port; trying another port"
        rm -f "$PORT_FILE"
    done
    die "the server did not start (log: $LOG_FILE)"
}

stop() {
    local pid waited=0
    if [ -f "$PID_FILE" ] && pid="$(cat "$PID_FILE")" && kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 120 ]; do sleep 0.5; waited=$((waited + 1)); done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        rm -f "$PID_FILE"
    else
        say "not running"
    fi
}

status() {
    if is_running; then
        say "running in $DATA_DIR"
        url
    else
        say "not running"
        return 3
    fi
}

server_main "$@"
