# What the throwaway database servers of the test suite share (sourced by pg-test-server.sh and
# mariadb-test-server.sh): messages, root rights, the Debian package, free ports, the lock, and
# the start|stop|url|status command line. The sourcing script sets NAME, PORT_FILE and LOCK_FILE
# and defines start, stop, status and url.

say() { printf '%s: %s\n' "$NAME" "$*" >&2; }
die() { say "$*"; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
    else die "need root (or sudo) to run: $*"
    fi
}

# apt_install WHAT PACKAGE: install a Debian package when the server is not on this machine.
apt_install() {
    say "$1 not found; installing the Debian package $2 (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    as_root timeout 600 apt-get -o DPkg::Lock::Timeout=120 update >&2 \
        || die "apt-get update failed"
    as_root timeout 900 apt-get -o DPkg::Lock::Timeout=120 install -y --no-install-recommends "$2" >&2 \
        || die "apt-get install $2 failed"
}

# A server outlives the script that starts it: it must not inherit our lock (fd 9) or a caller's
# pipes, or the lock would never be released and a caller reading our output would wait forever.
close_inherited_fds() {
    local fd
    for fd in $(ls "/proc/$BASHPID/fd" 2>/dev/null); do
        if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
    local port tries=0
    while [ "$tries" -lt 200 ]; do
        # below 32768, where the system picks the local ports of outgoing connections: a server
        # stopped and started again (the outage tests) must find its port still free
        port=$(( 20000 + RANDOM % 12000 ))
        if ! port_in_use "$port"; then printf '%s\n' "$port"; return 0; fi
        tries=$((tries + 1))
    done
    die "no free TCP port found on 127.0.0.1"
}

# The port a server last used if it is free again, else a new one (written to PORT_FILE).
pick_port() {
    local port
    if [ -f "$PORT_FILE" ] && ! port_in_use "$(cat "$PORT_FILE")"; then
        port="$(cat "$PORT_FILE")"
    else
        port="$(free_port)"
        printf '%s\n' "$port" > "$PORT_FILE"
    fi
    printf '%s\n' "$port"
}

with_lock() {
    mkdir -p "$(dirname "$LOCK_FILE")"
    exec 9>"$LOCK_FILE"
    flock -w 900 9 || die "timed out waiting for $LOCK_FILE"
    "$@"
}

server_main() {
    case "${1:-}" in
        start) with_lock start ;;
        stop) with_lock stop ;;
        status) status ;;
        url) [ -f "$PORT_FILE" ] || die "no server set up; run: $0 start"; url ;;
        *) say "usage: $0 start|stop|url|status"; exit 2 ;;
    esac
}
