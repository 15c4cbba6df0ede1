#!/usr/bin/env bash
# Makes sure Debian's Chromium is installed at /usr/bin/chromium for the browser tests.
#
# Idempotent: does nothing when the binary is already there. Otherwise runs `apt-get update` and
# `apt-get install -y chromium` (as root, or through `sudo -n` when not root), quietly and with
# timeouts (sudo drops the environment, hence `env DEBIAN_FRONTEND=...`). The tests drive this browser through Playwright; no other browser is ever downloaded.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

say() { printf 'install-chromium: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
    else die "need root (or sudo) to run: $*"
    fi
}

if [ -x "$CHROMIUM" ]; then
    exit 0
fi

command -v apt-get >/dev/null 2>&1 || die "$CHROMIUM is missing and apt-get is not available; install Chromium yourself"

say "$CHROMIUM not found; installing the Debian package chromium (apt-get)"
LOG="$(mktemp "${TMPDIR:-/tmp}/install-chromium.XXXXXX.log")"
if ! as_root env DEBIAN_FRONTEND=noninteractive timeout 600 \
        apt-get -q -o DPkg::Lock::Timeout=300 update >"$LOG" 2>&1; then
    tail -n 20 "$LOG" >&2
    die "apt-get update failed (full log: $LOG)"
fi
if ! as_root env DEBIAN_FRONTEND=noninteractive timeout 1200 \
        apt-get -q -o DPkg::Lock::Timeout=300 install -y chromium >"$LOG" 2>&1; then
    tail -n 20 "$LOG" >&2
    die "apt-get install chromium failed (full log: $LOG)"
fi
[ -x "$CHROMIUM" ] || die "chromium was installed but $CHROMIUM is still missing"
rm -f "$LOG"
say "installed $("$CHROMIUM" --version 2>/dev/null || echo chromium)"
