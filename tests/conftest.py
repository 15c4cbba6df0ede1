"""Fixtures shared by the whole suite.

Stores come per backend: a SQLite file in a temporary ``NBFLOW_HOME`` and a fresh database on a
real PostgreSQL server (``NBFLOW_TEST_POSTGRES_URL``, or the one ``scripts/pg-test-server.sh``
starts) and on a real MariaDB server (``NBFLOW_TEST_MYSQL_URL``, or the one
``scripts/mariadb-test-server.sh`` starts). Neither server is ever skipped: a backend that silently
drops out of the run tests nothing.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# Words meant for people follow the user's locale (schedules in words: nbflow.cronlocale); the suite
# checks the English ones, so it runs in the C locale whatever the machine's is. Tests of other
# languages ask for theirs.
for _name in ("LC_ALL", "LC_MESSAGES", "LANGUAGE"):
    os.environ.pop(_name, None)
os.environ["LANG"] = "C.UTF-8"

REPO = Path(__file__).resolve().parent.parent
PG_SCRIPT = REPO / "scripts" / "pg-test-server.sh"
MYSQL_SCRIPT = REPO / "scripts" / "mariadb-test-server.sh"
BACKENDS = ["sqlite", "postgres", "mysql"]


@pytest.fixture(autouse=True)
def _live_views_end_with_their_test() -> Iterator[None]:
    """A graph view a test made keeps the process's live-view poller going until it is collected,
    and the poller opens the store of the settings in force: after the test, that is the real
    ``~/nbflow``. So the views of a test stop being fed when it ends."""
    yield
    live = sys.modules.get("nbflow.jupyter.live")
    shared = getattr(live, "_HUB", None)
    if shared is not None:
        for view in shared.views():
            shared.remove(view)
        shared.poke()


@pytest.fixture
def nbflow_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ``NBFLOW_HOME``; settings are cached per environment, so no cache needs clearing."""
    home = tmp_path / "nbflow_home"
    home.mkdir()
    monkeypatch.setenv("NBFLOW_HOME", str(home))
    for name in list(os.environ):
        if name.startswith("NBFLOW_") and name not in ("NBFLOW_HOME", "NBFLOW_TEST_POSTGRES_URL", "NBFLOW_TEST_MYSQL_URL"):
            monkeypatch.delenv(name)
    return home


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'db' / 'nbflow.db'}"


def _start_server(script: Path, lock_name: str, scheme: str, what: str, env_name: str, example: str) -> str:
    """Start a throwaway server with ``script`` (idempotent) and return the URL it prints.

    pytest-xdist workers all get here; the lock makes the first one start the server and the
    others wait for it and then reuse it."""
    lock_path = Path(tempfile.gettempdir()) / f"{lock_name}-{os.getuid()}.fixture.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            done = subprocess.run(
                ["bash", str(script), "start"], capture_output=True, text=True, timeout=1200,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.fail(f"could not run {script} start: {exc}", pytrace=False)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    url = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode != 0 or not url.startswith(scheme):
        pytest.fail(
            f"{what} is needed by the store tests and could not be started by {script} "
            f"(exit {done.returncode}).\n{done.stderr[-3000:]}\nStart a server yourself and set "
            f"{env_name}={example}.",
            pytrace=False,
        )
    return url


def _scratch_database(server_url: str, create: str, drop: str) -> Iterator[str]:
    """A database of its own on ``server_url`` for one test (``create``/``drop`` take its name), so
    tests (and xdist workers) never share state."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    server = make_url(server_url)
    name = f"nbflow_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(text(create.format(name=name)))
    except Exception as exc:
        admin.dispose()
        pytest.fail(f"cannot create a test database on {server!r}: {exc}", pytrace=False)
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(drop.format(name=name)))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """URL of a PostgreSQL server's maintenance database, shared by the session."""
    return os.environ.get("NBFLOW_TEST_POSTGRES_URL") or _start_server(
        PG_SCRIPT, "nbflow-pgtest", "postgresql", "PostgreSQL", "NBFLOW_TEST_POSTGRES_URL",
        "postgresql+psycopg://user@host:port/postgres")


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A PostgreSQL database of its own for each test."""
    yield from _scratch_database(postgres_server_url, 'CREATE DATABASE "{name}"',
                                 'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def mysql_server_url() -> str:
    """URL of a MariaDB (or MySQL) server, shared by the session."""
    return os.environ.get("NBFLOW_TEST_MYSQL_URL") or _start_server(
        MYSQL_SCRIPT, "nbflow-mariadbtest", "mysql", "MariaDB", "NBFLOW_TEST_MYSQL_URL",
        "mysql+pymysql://root@host:port/nbflow_test")


@pytest.fixture
def mysql_url(mysql_server_url: str) -> Iterator[str]:
    """A MariaDB database of its own for each test (utf8mb4 with a binary collation, as the README asks)."""
    yield from _scratch_database(mysql_server_url,
                                 "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
                                 "DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty database on each backend in turn."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def store(store_url: str) -> Iterator[object]:
    """An initialised :class:`nbflow.store.Store` on each backend."""
    from nbflow.store import Store
    from nbflow.store.migrate import init_db

    init_db(store_url)
    opened = Store(store_url, busy_timeout=5.0)
    try:
        yield opened
    finally:
        opened.close()
