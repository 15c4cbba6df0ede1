"""The store's contract, run against every backend (SQLite file and PostgreSQL)."""

from __future__ import annotations

import multiprocessing
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, exc as sa_exc, text

from nbflow.errors import ConfigError, DagNotFoundError, DatabaseLockedError, SchemaVersionError, StoreUnavailableError
from nbflow.settings import load_settings
from nbflow.store import Store, open_store
from nbflow.store.migrate import HEAD_REVISION, check_db, init_db, reset_db, upgrade_db

T0 = datetime(2024, 3, 1, 6, 0, tzinfo=UTC)
SEOUL = timezone(timedelta(hours=9))


def make_run(store: Store, dag_id: str = "etl", run_id: str = "manual__1", *, tasks: int = 3,
             logical_date: datetime = T0, state: str = "queued") -> int:
    return store.create_run(
        dag_id=dag_id, run_id=run_id, run_type="manual", logical_date=logical_date,
        data_interval_start=logical_date - timedelta(days=1), data_interval_end=logical_date,
        conf={"k": [1, 2]}, state=state,
        task_rows=[
            {"task_id": f"t{i}", "state": "scheduled", "max_tries": 2, "operator": "PythonOperator",
             "pool": "default", "priority_weight": 10 - i}
            for i in range(tasks)
        ],
    )


def set_version(url: str, version: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": version})
    engine.dispose()


def settings_for(url: str, home: Path) -> Any:
    return load_settings(home=home, env={"NBFLOW_DATABASE_URL": url, "NBFLOW_DB_BUSY_TIMEOUT": "5"})


# -- schema lifecycle --------------------------------------------------------------------------


def test_init_check_upgrade_reset(store_url: str) -> None:
    with pytest.raises(SchemaVersionError, match="nbflow db init") as info:
        check_db(store_url)
    assert info.value.found is None
    init_db(store_url)
    check_db(store_url)
    upgrade_db(store_url)  # already at head: nothing to do
    init_db(store_url)
    with Store(store_url) as store:
        assert store.schema_version() == HEAD_REVISION
        store.check_schema()
        make_run(store)
    reset_db(store_url)
    check_db(store_url)
    with Store(store_url) as store:
        assert store.list_runs() == []
        assert store.list_dags() == []


@pytest.mark.parametrize("version", ["0000", "9999_from_the_future"])
def test_check_rejects_other_revisions_with_the_fix(store_url: str, version: str) -> None:
    init_db(store_url)
    set_version(store_url, version)
    with pytest.raises(SchemaVersionError, match="nbflow db upgrade") as info:
        check_db(store_url)
    assert (info.value.found, info.value.expected) == (version, HEAD_REVISION)
    with Store(store_url) as store, pytest.raises(SchemaVersionError, match=version):
        store.check_schema()
    with pytest.raises(SchemaVersionError, match=version):
        upgrade_db(store_url)  # an unknown revision is not something this nbflow can migrate


def test_open_creates_an_empty_database_at_head_without_alembic(store_url: str, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from nbflow.settings import load_settings\n"
        "from nbflow.store import open_store\n"
        f"s = load_settings(home={str(tmp_path)!r}, env={{'NBFLOW_DATABASE_URL': {store_url!r}}})\n"
        "store = open_store(s)\n"
        "print(store.schema_version(), 'alembic' in sys.modules)\n"
        "store.close()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [HEAD_REVISION, "False"]
    check_db(store_url)
    with open_store(settings_for(store_url, tmp_path)) as store:  # second open: plain version check
        assert store.list_dags() == []


def test_open_without_create_refuses_an_empty_database(store_url: str, tmp_path: Path) -> None:
    with pytest.raises(SchemaVersionError, match="nbflow db init"):
        Store.open(settings_for(store_url, tmp_path), create=False)


def test_open_uses_current_settings(nbflow_home: Path) -> None:
    with Store.open() as store:
        assert store.url == f"sqlite:///{nbflow_home.resolve() / 'nbflow.db'}"
        assert (nbflow_home / "nbflow.db").exists()


# -- dags --------------------------------------------------------------------------------------


def test_dags_upsert_list_pause_delete(store: Store) -> None:
    definition = {"tasks": [{"task_id": "a"}, {"task_id": "b"}], "edges": [["a", "b"]]}
    store.upsert_dag("b_dag", fileloc="/dags/b.py", source_kind="file", schedule="0 6 * * *",
                     timezone="Asia/Seoul", tags=["sales", "daily"], definition=definition,
                     max_active_runs=1, next_run_at=T0)
    store.upsert_dag("a_dag", source_kind="interactive")
    assert [d["dag_id"] for d in store.list_dags()] == ["a_dag", "b_dag"]
    row = store.get_dag("b_dag")
    assert row is not None
    assert row["tags"] == ["sales", "daily"] and row["definition"] == definition
    assert row["is_paused"] is False and row["next_run_at"] == T0
    assert row["updated_at"].tzinfo is not None

    store.set_paused("b_dag", True)
    store.upsert_dag("b_dag", description="re-parsed")  # a re-parse keeps the pause and other fields
    row = store.get_dag("b_dag")
    assert row["is_paused"] is True and row["description"] == "re-parsed" and row["tags"] == ["sales", "daily"]
    store.upsert_dag("b_dag", is_paused=False)
    assert store.get_dag("b_dag")["is_paused"] is False

    with pytest.raises(DagNotFoundError, match="nope"):
        store.set_paused("nope", True)
    with pytest.raises(TypeError, match="colour"):
        store.upsert_dag("a_dag", colour="red")

    run_pk = make_run(store, "b_dag")
    store.delete_dag("b_dag")
    assert store.get_dag("b_dag") is None
    assert store.get_run_by_pk(run_pk) is None and store.get_task_instances(run_pk) == []
    assert store.get_dag("missing") is None


# -- runs and task instances -------------------------------------------------------------------------


def test_create_run_writes_run_and_task_instances_together(store: Store) -> None:
    run_pk = make_run(store, "fresh_dag", tasks=3)
    assert store.get_dag("fresh_dag")["is_paused"] is False  # created on the fly
    run = store.get_run("fresh_dag", "manual__1")
    assert run == store.get_run_by_pk(run_pk)
    assert run["id"] == run_pk and run["conf"] == {"k": [1, 2]} and run["state"] == "queued"
    assert run["logical_date"] == T0 and run["data_interval_start"] == T0 - timedelta(days=1)
    tis = store.get_task_instances(run_pk)
    assert [ti["task_id"] for ti in tis] == ["t0", "t1", "t2"]
    assert all(ti["try_number"] == 0 and ti["max_tries"] == 2 and ti["state"] == "scheduled" for ti in tis)
    assert [ti["priority_weight"] for ti in tis] == [10, 9, 8]
    assert store.get_task_instance("fresh_dag", "manual__1", "t1")["id"] == tis[1]["id"]
    assert store.get_task_instance("fresh_dag", "manual__1", "zz") is None

    with pytest.raises(sa_exc.IntegrityError):  # same run id twice: nothing half-written
        make_run(store, "fresh_dag", tasks=5)
    assert len(store.list_runs("fresh_dag")) == 1 and len(store.get_task_instances(run_pk)) == 3


def test_list_update_delete_runs(store: Store) -> None:
    pks = [make_run(store, "d", f"r{i}", logical_date=T0 + timedelta(days=i), tasks=1) for i in range(4)]
    make_run(store, "other", "r0", tasks=0)
    assert [r["run_id"] for r in store.list_runs("d")] == ["r3", "r2", "r1", "r0"]
    assert len(store.list_runs()) == 5
    assert [r["run_id"] for r in store.list_runs("d", limit=2)] == ["r3", "r2"]
    store.update_run(pks[1], state="success", start_date=T0, end_date=T0 + timedelta(minutes=1))
    assert [r["run_id"] for r in store.list_runs("d", states=["success"])] == ["r1"]
    assert store.get_run_by_pk(pks[1])["end_date"] == T0 + timedelta(minutes=1)
    store.delete_run(pks[0])
    assert store.get_run("d", "r0") is None and store.get_task_instances(pks[0]) == []
    assert store.get_run("other", "r0") is not None
    assert store.get_run_by_pk(999_999) is None


def test_record_applies_a_batch_in_one_transaction(store: Store) -> None:
    run_pk = make_run(store, tasks=3)
    start, end = T0 + timedelta(seconds=1), T0 + timedelta(seconds=3)
    store.record(
        run_pk,
        task_changes=[
            {"task_id": "t0", "state": "success", "try_number": 1, "start_date": start, "end_date": end,
             "duration": 2.0, "hostname": "h1", "pid": 42},
            {"task_id": "t1", "state": "up_for_retry", "try_number": 1, "error": "Traceback: boom",
             "next_retry_at": end + timedelta(seconds=30)},
            {"task_id": "t2", "state": "running"},
        ],
        tries=[
            {"task_id": "t0", "try_number": 1, "state": "success", "start_date": start, "end_date": end,
             "duration": 2.0, "hostname": "h1", "pid": 42, "log_path": "/logs/t0/1.log"},
            {"task_id": "t1", "try_number": 1, "state": "failed", "error": "Traceback: boom"},
        ],
        outputs=[{"task_id": "t0", "value_json": "[1, 2, 3]", "size": 9}],
        events=[{"kind": "task_finished", "dag_id": "etl", "run_id": "manual__1", "task_id": "t0",
                 "detail": {"state": "success"}}],
        run_changes={"state": "running", "start_date": start},
    )
    tis = {ti["task_id"]: ti for ti in store.get_task_instances(run_pk)}
    assert tis["t0"]["state"] == "success" and tis["t0"]["duration"] == 2.0 and tis["t0"]["end_date"] == end
    assert tis["t1"]["error"] == "Traceback: boom" and tis["t1"]["next_retry_at"] == end + timedelta(seconds=30)
    assert tis["t2"]["state"] == "running" and tis["t2"]["try_number"] == 0
    assert [(t["task_id"], t["try_number"], t["state"]) for t in store.get_tries(run_pk)] == [
        ("t0", 1, "success"), ("t1", 1, "failed")]
    assert store.get_tries(run_pk, "t0")[0]["log_path"] == "/logs/t0/1.log"
    assert store.get_outputs(run_pk)["t0"]["value_json"] == "[1, 2, 3]"
    assert store.get_run_by_pk(run_pk)["state"] == "running"
    assert store.list_events("etl")[0]["detail"] == {"state": "success"}

    # outputs are replaced, not duplicated; an artifact output has no inline value
    store.record(run_pk, outputs=[{"task_id": "t0", "value_json": None, "artifact_path": "/a/t0.pkl", "size": 10**7}])
    out = store.get_outputs(run_pk)["t0"]
    assert out["value_json"] is None and out["artifact_path"] == "/a/t0.pkl" and out["size"] == 10**7
    assert out["created_at"].tzinfo is not None
    assert store.get_output(run_pk, "t0") == out and store.get_output(run_pk, "t1") is None

    # all or nothing: a bad value in the last part leaves the first parts unwritten
    with pytest.raises(ValueError, match="naive"):
        store.record(run_pk, task_changes=[{"task_id": "t2", "state": "success"}],
                     run_changes={"end_date": datetime(2024, 1, 1)})
    assert store.get_task_instance("etl", "manual__1", "t2")["state"] == "running"
    with pytest.raises(TypeError, match="bogus"):
        store.record(run_pk, task_changes=[{"task_id": "t2", "bogus": 1}])
    store.record(run_pk)  # an empty batch is fine


def test_import_errors(store: Store) -> None:
    store.record_import_error("/dags/a.py", "SyntaxError", "Traceback 1")
    store.record_import_error("/dags/b.py", "NameError", "Traceback 2")
    store.record_import_error("/dags/a.py", "ImportError", "Traceback 3")
    errors = store.list_import_errors()
    assert [(e["fileloc"], e["summary"], e["traceback"]) for e in errors] == [
        ("/dags/a.py", "ImportError", "Traceback 3"), ("/dags/b.py", "NameError", "Traceback 2")]
    assert errors[0]["created_at"].tzinfo is not None
    store.clear_import_errors("/dags/a.py")
    assert [e["fileloc"] for e in store.list_import_errors()] == ["/dags/b.py"]
    store.clear_import_errors()
    assert store.list_import_errors() == []


def test_events_newest_first(store: Store) -> None:
    store.add_events([{"kind": "dag_parsed", "dag_id": "a"}, {"kind": "run_created", "dag_id": "b", "run_id": "r"}])
    store.add_events([{"kind": "run_finished", "dag_id": "a", "at": T0, "detail": {"state": "success"}}])
    store.add_events([])
    assert [e["kind"] for e in store.list_events()] == ["run_finished", "run_created", "dag_parsed"]
    assert [e["kind"] for e in store.list_events("a")] == ["run_finished", "dag_parsed"]
    assert [e["kind"] for e in store.list_events(limit=1)] == ["run_finished"]
    assert store.list_events("a")[0]["at"] == T0
    with pytest.raises(TypeError, match="kind"):
        store.add_events([{"dag_id": "a"}])


def test_events_after_an_id_oldest_first_by_kind_and_up_to_a_bound(store: Store) -> None:
    assert store.last_event_id() == 0 and store.events_after(0) == []
    store.add_events([{"kind": "run_success", "dag_id": "a"}, {"kind": "run_failed", "dag_id": "b"}])
    first = store.last_event_id()
    store.add_events([{"kind": "run_failed", "dag_id": "c"}, {"kind": "task_marked", "dag_id": "c"}])
    last = store.last_event_id()
    assert last == first + 2
    assert [e["dag_id"] for e in store.events_after(0)] == ["a", "b", "c", "c"]
    assert [e["dag_id"] for e in store.events_after(first)] == ["c", "c"]
    assert [e["dag_id"] for e in store.events_after(0, kinds=["run_failed"])] == ["b", "c"]
    assert [e["dag_id"] for e in store.events_after(0, through=first)] == ["a", "b"]
    assert [e["kind"] for e in store.events_after(0, limit=1)] == ["run_success"]
    assert store.events_after(last) == []


def test_run_counts_per_dag_and_state(store: Store) -> None:
    make_run(store, "etl", "r1")
    make_run(store, "etl", "r2")
    make_run(store, "other", "r1")
    store.update_run(store.get_run("etl", "r2")["id"], state="failed")
    counts = store.run_counts()
    assert counts["etl"] == {"queued": 1, "failed": 1} and counts["other"] == {"queued": 1}


def test_datetimes_are_aware_utc_and_naive_ones_are_refused(store: Store) -> None:
    seoul_time = datetime(2024, 3, 1, 15, 0, 0, 123456, tzinfo=SEOUL)
    store.upsert_dag("tz", next_run_at=seoul_time)
    stored = store.get_dag("tz")["next_run_at"]
    assert stored == seoul_time and stored.utcoffset() == timedelta(0)
    assert stored == datetime(2024, 3, 1, 6, 0, 0, 123456, tzinfo=UTC)
    run_pk = make_run(store, "tz", logical_date=seoul_time)
    assert store.list_runs("tz")[0]["logical_date"].tzinfo is not None

    with pytest.raises(ValueError, match="naive"):
        store.upsert_dag("tz", next_run_at=datetime(2024, 3, 1, 6))
    with pytest.raises(ValueError, match="naive"):
        store.record(run_pk, task_changes=[{"task_id": "t0", "start_date": datetime(2024, 3, 1)}])
    with pytest.raises(ValueError, match="naive"):
        make_run(store, "tz", "naive", logical_date=datetime(2024, 3, 1))
    assert store.get_dag("tz")["next_run_at"] == seoul_time
    assert store.get_run("tz", "naive") is None


# -- locking and concurrency -----------------------------------------------------------------------


def test_locked_sqlite_raises_and_loses_nothing(sqlite_url: str) -> None:
    init_db(sqlite_url)
    store = Store(sqlite_url, busy_timeout=0.05)
    try:
        run_pk = make_run(store)
        store.record(run_pk, task_changes=[{"task_id": "t0", "state": "success"}])
        other = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(DatabaseLockedError, match="NBFLOW_DB_BUSY_TIMEOUT") as info:
                store.record(run_pk, task_changes=[{"task_id": "t1", "state": "success"}])
            assert isinstance(info.value.__cause__, sa_exc.OperationalError)
            with pytest.raises(DatabaseLockedError):
                store.upsert_dag("another")
        finally:
            other.execute("ROLLBACK")
            other.close()
        states = {ti["task_id"]: ti["state"] for ti in store.get_task_instances(run_pk)}
        assert states == {"t0": "success", "t1": "scheduled", "t2": "scheduled"}
        store.record(run_pk, task_changes=[{"task_id": "t1", "state": "success"}])  # a retry succeeds
        assert store.get_task_instance("etl", "manual__1", "t1")["state"] == "success"
    finally:
        store.close()


def test_claim_moves_only_rows_in_from_states(store: Store) -> None:
    run_pk = make_run(store, tasks=3)
    assert list(store.claim_task_instances(run_pk, ["t2", "t0", "zz"], "host-a")) == ["t2", "t0"]
    assert list(store.claim_task_instances(run_pk, ["t0", "t1", "t2"], "host-b")) == ["t1"]
    tis = {ti["task_id"]: ti for ti in store.get_task_instances(run_pk)}
    assert {k: (v["state"], v["claimed_by"]) for k, v in tis.items()} == {
        "t0": ("queued", "host-a"), "t1": ("queued", "host-b"), "t2": ("queued", "host-a")}
    assert tis["t0"]["queued_at"].tzinfo is not None
    assert list(store.claim_task_instances(run_pk, ["t0"], "host-c", from_states=("queued",), to_state="running")) == ["t0"]
    assert list(store.claim_task_instances(run_pk, [], "host-c")) == []


def test_a_claim_writes_the_try_it_starts_in_the_same_update(store: Store) -> None:
    run_pk = make_run(store, tasks=3)
    before = {ti["task_id"]: ti["try_number"] for ti in store.get_task_instances(run_pk)}
    assert list(store.claim_task_instances(run_pk, ["t0", "t1"], "host-a", try_numbers={"t0": 1, "t1": 3})) == ["t0", "t1"]
    # host-b asks for t1 again: it is taken, so neither its state nor its try changes
    assert list(store.claim_task_instances(run_pk, ["t1", "t2"], "host-b", try_numbers={"t1": 9, "t2": 2})) == ["t2"]
    tis = {ti["task_id"]: ti for ti in store.get_task_instances(run_pk)}
    assert {k: (v["try_number"], v["claimed_by"]) for k, v in tis.items()} == {
        "t0": (1, "host-a"), "t1": (3, "host-a"), "t2": (2, "host-b")}
    assert list(store.claim_task_instances(run_pk, ["t0"], "host-c", from_states=("queued",))) == ["t0"]
    assert store.get_task_instance("etl", "manual__1", "t0")["try_number"] == 1  # no try given: kept
    assert before != {k: v["try_number"] for k, v in tis.items()}


def test_a_fenced_claim_looks_its_rows_up_by_task_id_not_by_scanning_the_run(sqlite_url: str) -> None:
    """A claim sits between every task and the next: on SQLite it must use the (run_pk, task_id)
    index, not read every row of the run (which cost 0.37 ms a claim at 1,000 tasks)."""
    from sqlalchemy import event

    init_db(sqlite_url)
    seen: list[tuple[str, Any]] = []
    with Store(sqlite_url, busy_timeout=5.0) as opened:
        run_pk = make_run(opened, tasks=50)

        def remember(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
            if statement.lstrip().upper().startswith("UPDATE TASK_INSTANCE") and "fence" in statement:
                seen.append((statement, parameters))

        event.listen(opened._engine, "before_cursor_execute", remember)
        claimed = opened.claim_task_instances(run_pk, ["t3", "t7"], "host-a", seen={"t3": 0, "t7": 0},
                                              from_states=("scheduled",), to_state="running")
        assert list(claimed) == ["t3", "t7"]
    assert seen, "the claim's UPDATE was not seen"
    statement, parameters = seen[0]
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as raw:
        plan = " ".join(row[3] for row in raw.execute("EXPLAIN QUERY PLAN " + statement, parameters))
    assert "task_id=?" in plan, plan


def test_concurrent_claims_take_each_task_instance_once(store_url: str, store: Store) -> None:
    tasks = 60
    run_pk = make_run(store, tasks=tasks)
    task_ids = [f"t{i}" for i in range(tasks)]
    hosts = 4
    claimed: dict[str, list[str]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(hosts)

    def host(name: str, order: list[str]) -> None:
        mine: list[str] = []
        try:
            with Store(store_url, busy_timeout=10) as own:  # its own engine: a separate host
                barrier.wait()
                for start in range(0, len(order), 5):
                    mine += list(own.claim_task_instances(run_pk, order[start:start + 5], name))
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        claimed[name] = mine

    threads = [
        threading.Thread(target=host, args=(f"h{n}", task_ids if n % 2 == 0 else task_ids[::-1]))
        for n in range(hosts)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    every = [task_id for mine in claimed.values() for task_id in mine]
    assert sorted(every) == sorted(task_ids)  # each exactly once
    owner = {ti["task_id"]: ti["claimed_by"] for ti in store.get_task_instances(run_pk)}
    assert all(owner[task_id] == name for name, mine in claimed.items() for task_id in mine)


def _claim_in_process(url: str, run_pk: int, task_ids: list[str], name: str, queue: Any) -> None:
    with Store(url, busy_timeout=10) as store:
        queue.put((name, list(store.claim_task_instances(run_pk, task_ids, name))))


def test_concurrent_claims_across_processes(store_url: str, store: Store) -> None:
    run_pk = make_run(store, tasks=40)
    task_ids = [f"t{i}" for i in range(40)]
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    procs = [context.Process(target=_claim_in_process, args=(store_url, run_pk, task_ids, f"p{n}", queue))
             for n in range(2)]
    for proc in procs:
        proc.start()
    results = dict(queue.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    every = [task_id for mine in results.values() for task_id in mine]
    assert sorted(every) == sorted(task_ids)


# -- a database that cannot be used -----------------------------------------------------------------

#: nothing listens on port 1 of the loopback interface (binding it needs root), so connecting is refused
UNREACHABLE = "postgresql+psycopg://nbflow:s3cret@127.0.0.1:1/nbflow"


def test_an_unreachable_database_is_one_error_naming_the_url_without_its_password(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, env={"NBFLOW_DATABASE_URL": UNREACHABLE})
    with pytest.raises(StoreUnavailableError) as info:
        Store.open(settings)
    error = info.value
    assert isinstance(error.__cause__, sa_exc.OperationalError)
    assert error.url == "postgresql+psycopg://nbflow:***@127.0.0.1:1/nbflow" and error.source == "NBFLOW_DATABASE_URL"
    message = str(error)
    assert "s3cret" not in message and "\n" not in message
    assert "cannot connect to the store postgresql+psycopg://nbflow:***@127.0.0.1:1/nbflow" in message
    assert "refused" in message.lower() and "(from the environment variable NBFLOW_DATABASE_URL)" in message
    (tmp_path / "nbflow.toml").write_text(f'database_url = "{UNREACHABLE}"\n')
    with pytest.raises(StoreUnavailableError, match=f"from {tmp_path.resolve() / 'nbflow.toml'}"):
        Store.open(load_settings(home=tmp_path, env={}))
    # the same boundary for a store already open whose server went away, and for the schema commands
    with pytest.raises(StoreUnavailableError, match="nbflow:\\*\\*\\*@"):
        Store(UNREACHABLE).list_dags()
    with pytest.raises(StoreUnavailableError):
        check_db(UNREACHABLE)


@pytest.mark.parametrize("url, problem", [
    ("not a url", "not a database URL"),
    ("nosuchdb://u:pw@host/db", "no database kind 'nosuchdb'"),
    ("mysql+nosuchdriver://u:pw@host/db", "database kind|not installed"),
])
def test_an_unusable_database_url_is_a_setting_error(tmp_path: Path, url: str, problem: str) -> None:
    settings = load_settings(home=tmp_path, env={"NBFLOW_DATABASE_URL": url})
    with pytest.raises(ConfigError, match=problem) as info:
        Store.open(settings)
    assert (info.value.key, info.value.source) == ("database_url", "NBFLOW_DATABASE_URL")
    assert ":pw@" not in str(info.value) and "\n" not in str(info.value)
