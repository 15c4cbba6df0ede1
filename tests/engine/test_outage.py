"""The store going away under a running daemon: PostgreSQL stopped and started again, SQLite held
locked by another process. The daemon lives through it, keeps the outcomes of the tasks that ended
meanwhile, writes them once the store is back, and every task runs exactly once.

PostgreSQL here is a throwaway server of this module's own (``scripts/pg-test-server.sh`` with its
own data folder), never the shared one the other tests use: these tests stop it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from waiting import wait_for

from nbflow.errors import (
    DatabaseLockedError,
    SchemaVersionError,
    StoreError,
    StoreInterruptedError,
    StoreUnavailableError,
    TransientStoreError,
)
from nbflow.store import Store
from nbflow.store.migrate import init_db

REPO = Path(__file__).resolve().parents[2]
PG_SCRIPT = REPO / "scripts" / "pg-test-server.sh"
MYSQL_SCRIPT = REPO / "scripts" / "mariadb-test-server.sh"
CHAINS, LENGTH = 3, 10
TASK_IDS = [f"c{c}_{i}" for c in range(CHAINS) for i in range(LENGTH)]

pytestmark = pytest.mark.slow

_DAG_FILE = '''
import os
import time

from nbflow import DAG
from nbflow.operators import PythonOperator

SIDE_EFFECTS = {side!r}


def work(ti):
    time.sleep({pause!r})
    fd = os.open(SIDE_EFFECTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{{ti.task_id}} {{ti.try_number}} {{os.getpid()}}\\n".encode())
    finally:
        os.close(fd)


with DAG("outage", schedule="@once", start_date="2024-01-01", timezone="UTC", max_active_tasks=16) as d:
    for c in range({chains!r}):
        previous = None
        for i in range({length!r}):
            op = PythonOperator(task_id=f"c{{c}}_{{i}}", python_callable=work)
            if previous is not None:
                previous >> op
            previous = op
'''


# -- a PostgreSQL server of this module's own ----------------------------------------------------------


@dataclass
class Server:
    url: str
    script: Callable[[str], None]

    def stop(self) -> None:
        self.script("stop")

    def start(self) -> None:
        self.script("start")


def _own_server(script_path: Path, dir_variable: str, prefix: str) -> Iterator[Server]:
    """A server of a module's own, in a folder of its own, which its tests stop and start again on its port."""
    base = Path(tempfile.gettempdir()) / f"{prefix}-{os.getuid()}-{uuid.uuid4().hex[:10]}"
    env = {**os.environ, dir_variable: str(base)}
    output: list[str] = []

    def script(command: str) -> None:
        done = subprocess.run(["bash", str(script_path), command], env=env, capture_output=True, text=True,
                              timeout=600, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            pytest.fail(f"{script_path} {command} failed ({done.returncode}):\n{done.stderr[-3000:]}", pytrace=False)
        output.append(done.stdout)

    script("start")
    url = output[-1].strip().splitlines()[-1]
    try:
        yield Server(url, script)
    finally:
        subprocess.run(["bash", str(script_path), "stop"], env=env, capture_output=True, timeout=120,
                       stdin=subprocess.DEVNULL)
        shutil.rmtree(base, ignore_errors=True)
        Path(f"{base}.lock").unlink(missing_ok=True)


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[Server]:
    yield from _own_server(PG_SCRIPT, "NBFLOW_PGTEST_DIR", "nbflow-outage")


@pytest.fixture(scope="module")
def own_mysql() -> Iterator[Server]:
    yield from _own_server(MYSQL_SCRIPT, "NBFLOW_MARIADBTEST_DIR", "nbflow-outage-mariadb")


@pytest.fixture
def outage_mysql_url(own_mysql: Server) -> Iterator[str]:
    """A fresh database on the module's own MariaDB server."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    server = make_url(own_mysql.url)
    name = f"nbflow_outage_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        own_mysql.start()  # a failed test may have left it stopped
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


@pytest.fixture
def outage_pg_url(own_postgres: Server) -> Iterator[str]:
    """A fresh database on the module's own server."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    server = make_url(own_postgres.url)
    name = f"nbflow_outage_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        own_postgres.start()  # a failed test may have left it stopped
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# -- a daemon and its run ------------------------------------------------------------------------------


def _env(home: Path, database_url: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBFLOW_")}
    env.update(NBFLOW_HOME=str(home), NBFLOW_HEARTBEAT_INTERVAL="0.5", NBFLOW_POLL_INTERVAL="0.2",
               NBFLOW_DAG_RELOAD_INTERVAL="2")
    if database_url is not None:
        env["NBFLOW_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def _daemon(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "nbflow", "scheduler", "--exit-when-idle"], env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)




def _executions(side: Path) -> dict[str, list[int]]:
    ran: dict[str, list[int]] = defaultdict(list)
    if side.exists():
        for line in side.read_text().splitlines():
            task_id, try_number, _pid = line.split()
            ran[task_id].append(int(try_number))
    return ran


def _lines(side: Path) -> int:
    return len(side.read_text().splitlines()) if side.exists() else 0


def _setup(tmp_path: Path, pause: float) -> tuple[Path, Path, Path]:
    home, side, log = tmp_path / "home", tmp_path / "side_effects.txt", tmp_path / "daemon.log"
    (home / "dags").mkdir(parents=True)
    source = _DAG_FILE.format(side=str(side), pause=pause, chains=CHAINS, length=LENGTH)
    (home / "dags" / "outage.py").write_text(source)
    return home, side, log


def _check_exactly_once(url: str, side: Path, log: Path, hosts: list[str] | None = None) -> None:
    with Store(url, busy_timeout=10) as store:
        (run,) = store.list_runs("outage", limit=None)
        assert run["state"] == "success", (run, log.read_text()[-3000:])
        tis = {ti["task_id"]: ti for ti in store.get_task_instances(run["id"])}
        assert {t: ti["state"] for t, ti in tis.items()} == dict.fromkeys(TASK_IDS, "success")
        assert {t: ti["try_number"] for t, ti in tis.items()} == dict.fromkeys(TASK_IDS, 1)
        tries: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for row in store.get_tries(run["id"]):
            tries[row["task_id"]].append((row["try_number"], row["state"]))
        assert dict(tries) == {t: [(1, "success")] for t in TASK_IDS}
        assert [h["state"] for h in store.list_hosts()] == (hosts or ["stopped"])
    assert dict(_executions(side)) == {t: [1] for t in TASK_IDS}, "a task ran twice or never"


def _stop(daemon: subprocess.Popen[bytes]) -> None:
    if daemon.poll() is None:
        daemon.kill()
        daemon.wait()


def _next_task_claimed(url: str) -> bool:
    """Whether a task after the first of its chain is running: its claim is written at once, unlike
    the buffered outcomes of the tasks before it."""
    with Store(url, busy_timeout=10) as store:
        runs = store.list_runs("outage", limit=None)
        return bool(runs) and any(ti["state"] == "running" and not ti["task_id"].endswith("_0")
                                  for ti in store.get_task_instances(runs[0]["id"]))


def _postgres_outage(tmp_path: Path, server: Server, url: str, seconds: float, **env: str) -> str:
    """Run the DAG under a daemon, stop its database server (PostgreSQL or MariaDB) for ``seconds``
    once a few tasks are done; return the daemon's log."""
    home, side, log = _setup(tmp_path, pause=0.2)
    init_db(url)
    daemon = _daemon(_env(home, url, **env), log)
    try:
        # the first task of each chain has ended and a next one holds its claim, so a task is
        # running when the server stops (the three first lines alone left a window with none)
        wait_for(lambda: _lines(side) >= 3 and _next_task_claimed(url), 60, "the first tasks to run")
        server.stop()
        stopped_at = time.monotonic()
        while time.monotonic() - stopped_at < seconds:  # the outage itself is what is tested
            assert daemon.poll() is None, f"the daemon died without its database:\n{log.read_text()[-3000:]}"
            time.sleep(0.05)
        if seconds > 1:
            # the tasks running when the store went away went on running and ended meanwhile
            assert _lines(side) > 3
        server.start()
        assert daemon.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        _stop(daemon)
    _check_exactly_once(url, side, log)
    return log.read_text()


def test_postgres_stopped_for_5_seconds_mid_run(tmp_path: Path, own_postgres: Server, outage_pg_url: str) -> None:
    text = _postgres_outage(tmp_path, own_postgres, outage_pg_url, 5.0)
    # one line when the outage starts, one when it ends with its length; no traceback
    assert text.count("store unreachable") == 1, text
    assert text.count("store reachable again after") == 1, text
    assert "Traceback" not in text, text
    assert "stopped claiming" not in text, text


def test_mysql_stopped_for_5_seconds_mid_run(tmp_path: Path, own_mysql: Server, outage_mysql_url: str) -> None:
    text = _postgres_outage(tmp_path, own_mysql, outage_mysql_url, 5.0)
    assert text.count("store unreachable") == 1, text
    assert text.count("store reachable again after") == 1, text
    assert "Traceback" not in text, text
    assert "stopped claiming" not in text, text


def test_two_daemons_outlive_an_outage_longer_than_host_stale_after(
    tmp_path: Path, own_postgres: Server, outage_pg_url: str
) -> None:
    """Both hosts wait the outage out, write what they decided meanwhile, and share the rest of the run:
    every task runs once, and neither takes the other for dead."""
    home, side, _log = _setup(tmp_path, pause=0.2)
    init_db(outage_pg_url)
    env = _env(home, outage_pg_url, NBFLOW_HOST_STALE_AFTER="2", NBFLOW_HEARTBEAT_INTERVAL="0.3")
    logs = [tmp_path / "daemon0.log", tmp_path / "daemon1.log"]
    daemons = [_daemon(env, log) for log in logs]
    try:
        with Store(outage_pg_url) as store:
            wait_for(lambda: len(store.list_hosts("running")) == 2, 60, "both hosts to register")
        wait_for(lambda: _lines(side) >= 3, 60, "the first tasks to run")
        own_postgres.stop()
        stopped_at = time.monotonic()
        while time.monotonic() - stopped_at < 4.0:  # twice host_stale_after
            assert all(d.poll() is None for d in daemons), "a daemon died without its database"
            time.sleep(0.05)
        own_postgres.start()
        for daemon, log in zip(daemons, logs):
            assert daemon.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        for daemon in daemons:
            _stop(daemon)
    text = "".join(log.read_text() for log in logs)
    _check_exactly_once(outage_pg_url, side, logs[0], hosts=["stopped", "stopped"])
    assert "WorkerLostError" not in text and "Traceback" not in text, text


def test_postgres_blip_mid_run(tmp_path: Path, own_postgres: Server, outage_pg_url: str) -> None:
    text = _postgres_outage(tmp_path, own_postgres, outage_pg_url, 0.0)
    assert "Traceback" not in text, text


def test_past_the_grace_the_daemon_stops_claiming_then_resumes(
    tmp_path: Path, own_postgres: Server, outage_pg_url: str
) -> None:
    text = _postgres_outage(tmp_path, own_postgres, outage_pg_url, 4.0, NBFLOW_DB_OUTAGE_GRACE="1.5")
    assert text.count("stopped claiming") == 1, text
    assert text.count("resumes claiming") == 1, text
    assert text.index("store unreachable") < text.index("stopped claiming") < text.index("resumes claiming")


def test_sqlite_locked_past_the_busy_timeout_mid_run(tmp_path: Path) -> None:
    home, side, log = _setup(tmp_path, pause=0.1)
    db = home / "nbflow.db"
    url = f"sqlite:///{db}"
    init_db(url)
    daemon = _daemon(_env(home, None, NBFLOW_DB_BUSY_TIMEOUT="0.3"), log)
    holder = None
    try:
        wait_for(lambda: _lines(side) >= 3, 60, "the first tasks to run")
        # another process takes the write lock and keeps it well past the daemon's busy timeout
        holder = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(f"""
                import sqlite3, sys, time
                conn = sqlite3.connect({str(db)!r}, isolation_level=None, timeout=10)
                conn.execute("BEGIN EXCLUSIVE")
                print("locked", flush=True)
                time.sleep(3)
                conn.execute("ROLLBACK")
            """)], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        assert holder.stdout is not None
        with holder.stdout:
            assert holder.stdout.readline().strip() == b"locked"
        assert holder.wait(timeout=30) == 0
        assert daemon.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        _stop(daemon)
        if holder is not None and holder.poll() is None:
            holder.kill()
            holder.wait()
    _check_exactly_once(url, side, log)
    text = log.read_text()
    assert text.count("store unreachable") == 1, text
    assert text.count("store reachable again after") == 1, text
    assert "Traceback" not in text, text


# -- which store errors are transient ------------------------------------------------------------------


def test_transient_errors_are_told_from_permanent_ones(tmp_path: Path, outage_pg_url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import IntegrityError
    from sqlalchemy.pool import NullPool

    from nbflow.store.engine import write_transaction

    init_db(outage_pg_url)
    with Store(outage_pg_url) as store:
        store.upsert_dag("d")
        # the server ends a pooled connection between two calls: the pool's check replaces it
        with store._engine.connect() as conn:
            pid = conn.execute(text("select pg_backend_pid()")).scalar_one()
        killer = create_engine(outage_pg_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        with killer.connect() as conn:
            conn.execute(text("select pg_terminate_backend(:pid)"), {"pid": pid})
        killer.dispose()
        store.upsert_dag("d", is_paused=True)
        assert store.get_dag("d")["is_paused"] is True

        with pytest.raises(IntegrityError):  # a bug, not an outage: not transient, not translated
            store.create_run(dag_id="d", run_id="r", run_type="manual", logical_date=None,
                             data_interval_start=None, data_interval_end=None, conf={}, state="queued",
                             task_rows=[{"task_id": "t"}, {"task_id": "t"}])
        assert store.get_run("d", "r") is None  # one transaction: no half-written run

        # a connection closed by the server in the middle of a write transaction
        with pytest.raises(StoreInterruptedError) as info:
            with write_transaction(store._engine, store.url) as conn:
                conn.execute(text("update dag set is_paused = false where dag_id = 'd'"))
                conn.execute(text("select pg_terminate_backend(pg_backend_pid())"))
        assert isinstance(info.value, TransientStoreError)
        assert "nothing of it was stored" in str(info.value)
        assert store.get_dag("d")["is_paused"] is True

    with Store("postgresql+psycopg://postgres@127.0.0.1:1/postgres") as nowhere, \
            pytest.raises(StoreUnavailableError) as unreachable:
        nowhere.list_dags()
    assert isinstance(unreachable.value, TransientStoreError)
    assert not issubclass(SchemaVersionError, TransientStoreError)
    assert issubclass(TransientStoreError, StoreError)

    # SQLite held by another writer past the busy timeout
    db = tmp_path / "locked.db"
    init_db(f"sqlite:///{db}")
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with Store(f"sqlite:///{db}", busy_timeout=0.1) as store, pytest.raises(DatabaseLockedError) as locked:
            store.upsert_dag("d")
        assert isinstance(locked.value, TransientStoreError)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


# -- the outage's state and lines, on a clock the test moves ----------------------------------------


def test_the_outage_says_when_it_starts_passes_the_grace_and_ends(caplog: pytest.LogCaptureFixture) -> None:
    from nbflow.engine.outage import StoreOutage

    now = [100.0]
    outage = StoreOutage("h1", grace=10.0, clock=lambda: now[0])
    caplog.set_level("WARNING", logger="nbflow.engine.scheduler")
    assert not outage.down and outage.claiming and outage.heartbeat_credit(30, 5) == 0.0
    delays = []
    for _ in range(8):
        delays.append(outage.failed(StoreUnavailableError("postgresql://db/x", "connection refused")))
        now[0] += 1.0
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]  # doubling, capped
    assert outage.down and outage.claiming and outage.length() == 8.0
    now[0] += 2.0
    outage.failed(StoreUnavailableError("postgresql://db/x", "connection refused"))  # 10 s: past the grace
    assert not outage.claiming
    outage.failed(StoreUnavailableError("postgresql://db/x", "connection refused"))
    now[0] += 2.5
    outage.recovered()
    assert not outage.down and outage.claiming and outage.last_length == 12.5
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert lines[0].startswith("scheduler h1: store unreachable (cannot connect to the store postgresql://db/x")
    assert "past db_outage_grace (10 s): stopped claiming new work and creating runs" in lines[1]
    assert lines[2] == ("scheduler h1: store reachable again after 12.5 s; what waited in memory is written; "
                        "resumes claiming new work")
    # others' heartbeats are forgiven the outage and the time they need to notice its end, then no more
    assert outage.heartbeat_credit(30, 5) == 12.5 + 5.0 + 5.0
    now[0] += 39.9
    assert outage.heartbeat_credit(30, 5) == 22.5
    now[0] += 0.2
    assert outage.heartbeat_credit(30, 5) == 0.0
    outage.recovered()  # not down: nothing to say
    assert len(caplog.records) == 3


def test_after_an_outage_other_hosts_are_not_taken_for_dead_for_not_beating_during_it(
    nbflow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime, timedelta

    from nbflow.engine.outage import MAX_DELAY, StoreOutage
    from nbflow.engine.scheduler import Scheduler
    from nbflow.settings import get_settings

    monkeypatch.setenv("NBFLOW_HOST_STALE_AFTER", "2")
    monkeypatch.setenv("NBFLOW_HEARTBEAT_INTERVAL", "0.5")
    settings = get_settings()
    with Store.open(settings) as store:
        scheduler = Scheduler(settings=settings, store=store, executor="inline", dags={})
        clock = [0.0]
        scheduler.outage = StoreOutage(scheduler.host_id, settings.db_outage_grace, clock=lambda: clock[0])
        now = datetime.now(UTC)
        # another machine's host, last heard of 10 s ago: just before the store went away for 9 s
        store.register_host("other", hostname="elsewhere", pid=1, kind="daemon")
        store.heartbeat("other", now=now - timedelta(seconds=10))
        scheduler.outage.failed(StoreUnavailableError("sqlite:///x", "gone"))
        clock[0] += 9.0
        scheduler.outage.recovered()
        try:
            scheduler.tick(now)
            assert [h["state"] for h in store.list_hosts() if h["host_id"] == "other"] == ["running"]
            # once it has had time to beat again and did not, it is dead
            clock[0] += settings.host_stale_after + MAX_DELAY + settings.heartbeat_interval
            scheduler._due["heartbeat"] = 0.0
            scheduler.tick(now)
            assert [h["state"] for h in store.list_hosts() if h["host_id"] == "other"] == ["dead"]
        finally:
            scheduler.close(grace=1.0)
