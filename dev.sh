#!/usr/bin/env bash
# One entry point for working on nbflow from a fresh clone.
#
#   ./dev.sh demo     set up .venv and run the demo pipeline
#   ./dev.sh test     set up .venv, install Chromium and start a throwaway PostgreSQL and MariaDB
#                     when missing (NBFLOW_KEEP_PG=1 / NBFLOW_KEEP_MYSQL=1 keep them running),
#                     run the whole test suite (browser tests included)
#   ./dev.sh bench    set up .venv and run the benchmarks
#   ./dev.sh shell    set up .venv and open a shell with it active
#   ./dev.sh setup    only set up .venv (nbflow[test], the JupyterLab extension built and installed)
#
# Needs only Python >= 3.11 and Node.js >= 20 (and, for the tests, apt for PostgreSQL, MariaDB and Chromium
# when missing).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
VENV="$ROOT/.venv"

find_python() {
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  echo "nbflow needs Python >= 3.11; none was found on PATH" >&2
  exit 1
}

setup() {
  local extras="$1"
  if [ ! -x "$VENV/bin/python" ]; then
    "$(find_python)" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
  fi
  # Reinstall only when the dependencies or the JupyterLab extension's sources changed: the
  # install builds the extension (labextension/ -> nbflow/labextension) and copies it into
  # .venv/share/jupyter/labextensions, where JupyterLab finds it.
  local stamp="$VENV/.nbflow-installed-$extras"
  local digest
  digest=$("$VENV/bin/python" - <<'PY'
import hashlib
from pathlib import Path

ext = Path("labextension")
files = [Path("pyproject.toml"), *(ext / name for name in ("package.json", "yarn.lock", "tsconfig.json", ".yarnrc.yml", "install.json"))]
for folder in ("src", "style", "schema"):
    files += sorted(p for p in (ext / folder).rglob("*") if p.is_file())
digest = hashlib.sha1()
for path in files:
    digest.update(str(path).encode() + b"\0" + (path.read_bytes() if path.is_file() else b"") + b"\0")
print(digest.hexdigest())
PY
)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ] ||
     [ ! -f "$VENV/share/jupyter/labextensions/nbflow-labextension/package.json" ]; then
    if ! command -v node >/dev/null 2>&1; then
      echo "dev.sh: building nbflow's JupyterLab extension needs Node.js (>= 20) on PATH" >&2
      exit 1
    fi
    echo "dev.sh: installing nbflow[$extras] into .venv (and building the JupyterLab extension) ..." >&2
    "$VENV/bin/python" -m pip install --quiet -e ".[$extras]"
    echo "$digest" > "$stamp"
  fi
}

command=${1:-help}
shift || true
case "$command" in
  demo)
    setup "postgres"
    exec "$VENV/bin/nbflow" demo "$@"
    ;;
  test)
    setup "test"
    bash scripts/install-chromium.sh
    PG_URL=$(bash scripts/pg-test-server.sh start)
    export NBFLOW_TEST_POSTGRES_URL="$PG_URL"
    MYSQL_URL=$(bash scripts/mariadb-test-server.sh start)
    export NBFLOW_TEST_MYSQL_URL="$MYSQL_URL"
    status=0
    "$VENV/bin/python" -m pytest -n "${NBFLOW_TEST_WORKERS:-3}" "$@" || status=$?
    if [ "${NBFLOW_KEEP_PG:-0}" != "1" ]; then bash scripts/pg-test-server.sh stop >/dev/null 2>&1 || true; fi
    if [ "${NBFLOW_KEEP_MYSQL:-0}" != "1" ]; then bash scripts/mariadb-test-server.sh stop >/dev/null 2>&1 || true; fi
    exit $status
    ;;
  bench)
    setup "test"
    exec "$VENV/bin/python" benchmarks/run.py "$@"
    ;;
  setup)
    setup "test"
    ;;
  shell)
    setup "test"
    exec bash --rcfile <(echo "source '$VENV/bin/activate'; PS1='(nbflow) \w\$ '")
    ;;
  *)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    [ "$command" = "help" ] || exit 2
    ;;
esac
