"""Retention in the store: real runs made by the engine (rows, logs and artifact files), deleted by
age, state and count, in batches, by several cleaners at once; storage use and orphans.

"Old" is a matter of the clock the policy is given: runs end now, and the policy looks at them
from days later.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from nbflow import DAG, task
from nbflow.engine.lifecycle import create_run
from nbflow.engine.runs import run_dag
from nbflow.engine.sync import sync_dag
from nbflow.paths import safe_path_part
from nbflow.settings import load_settings
from nbflow.store import Store, schema
from nbflow.store.retention import Policy, clean, doomed_runs
from nbflow.store.storage import delete_orphans, orphans, usage

RUN_TABLES = (schema.task_instance, schema.task_try, schema.task_output, schema.task_xcom)


@pytest.fixture
def settings(tmp_path: Path, store_url: str) -> Any:
    # outputs over 16 bytes go to artifact files, so every run has files in both folders
    return load_settings(home=tmp_path / "home", env={"NBFLOW_DATABASE_URL": store_url,
                                                      "NBFLOW_INLINE_OUTPUT_BYTES": "16"})


@pytest.fixture
def store(settings: Any) -> Any:
    opened = Store.open(settings)
    try:
        yield opened
    finally:
        opened.close()


def make_dag(dag_id: str, *, fail: bool = False) -> DAG:
    with DAG(dag_id, timezone="UTC", schedule=None) as d:
        @task
        def work(ds, ti):
            print(f"working on {ds}")
            ti.xcom_push(key="note", value="x" * 100)
            if fail:
                raise ValueError("broken on purpose")
            return list(range(50))

        work()
    return d


def runs(dag: DAG, settings: Any, store: Store, n: int) -> list[dict[str, Any]]:
    made = []
    for day in range(n):
        run = run_dag(dag, logical_date=datetime(2024, 1, day + 1, tzinfo=UTC), executor="inline",
                      store=store, settings=settings)
        made.append(store.get_run(dag.dag_id, run.run_id))
    return made


def folders(settings: Any, run: dict[str, Any]) -> list[Path]:
    return [Path(root) / safe_path_part(run["dag_id"]) / safe_path_part(run["run_id"])
            for root in (settings.logs_folder, settings.artifacts_folder)]


def rows_of(store: Store, run_pk: int) -> int:
    with store._engine.connect() as conn:
        return sum(conn.execute(select(func.count()).select_from(t).where(t.c.run_pk == run_pk)).scalar() for t in RUN_TABLES)


def gone(store: Store, settings: Any, run: dict[str, Any]) -> bool:
    return (store.get_run_by_pk(run["id"]) is None and rows_of(store, run["id"]) == 0
            and not any(folder.exists() for folder in folders(settings, run)))


def kept(store: Store, settings: Any, run: dict[str, Any]) -> bool:
    log_dir, artifact_dir = folders(settings, run)
    return (store.get_run_by_pk(run["id"]) is not None and rows_of(store, run["id"]) > 0 and log_dir.is_dir()
            and (artifact_dir.is_dir() or run["state"] == "failed"))  # a failed task left no output


def later(days: float) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


def clean_at(store: Store, settings: Any, now: datetime, **kwargs: Any) -> Any:
    return clean(store, Policy.from_settings(settings, now, kwargs.pop("dag_id", None)),
                 logs_folder=settings.logs_folder, artifacts_folder=settings.artifacts_folder, **kwargs)


def test_a_run_has_rows_and_files_in_both_folders(settings: Any, store: Store) -> None:
    (run,) = runs(make_dag("etl"), settings, store, 1)
    with store._engine.connect() as conn:
        for table in RUN_TABLES:
            assert conn.execute(select(func.count()).select_from(table).where(table.c.run_pk == run["id"])).scalar() > 0, table
    log_dir, artifact_dir = folders(settings, run)
    assert any(log_dir.rglob("*.log")) and any(artifact_dir.rglob("*.json"))


def test_old_runs_go_with_their_rows_and_files_active_and_last_runs_stay(settings: Any, store: Store) -> None:
    etl = make_dag("etl")
    first, second = runs(etl, settings, store, 2)
    sync_dag(store, etl)
    queued = create_run(store, etl, datetime(2024, 2, 1, tzinfo=UTC), run_type="manual")
    last = runs(etl, settings, store, 1)[0]
    other = runs(make_dag("other"), settings, store, 1)[0]

    assert clean_at(store, settings, later(1)).runs == []  # nothing is 30 days old yet
    report = clean_at(store, settings, later(31))

    assert sorted(r.run_id for r in report.runs) == sorted([first["run_id"], second["run_id"]])
    assert {r.reason for r in report.runs} == {"age"}
    assert gone(store, settings, first) and gone(store, settings, second)
    assert store.get_run_by_pk(queued.run_pk)["state"] == "queued"  # active
    assert kept(store, settings, last) and kept(store, settings, other)  # each DAG's last run
    assert report.rows["dag_run"] == 2 and report.rows["task_instance"] == 2 and report.rows["task_xcom"] == 2
    assert report.files >= 4 and report.bytes > 0
    assert clean_at(store, settings, later(31)).runs == []


def test_failed_runs_are_kept_longer(settings: Any, store: Store) -> None:
    good, flaky = make_dag("good"), make_dag("flaky", fail=True)
    good_runs = runs(good, settings, store, 2)
    failed = runs(flaky, settings, store, 2)
    assert {r["state"] for r in failed} == {"failed"}

    clean_at(store, settings, later(40))
    assert gone(store, settings, good_runs[0]) and kept(store, settings, failed[0])

    report = clean_at(store, settings, later(91))
    assert [r.run_id for r in report.runs] == [failed[0]["run_id"]]
    assert gone(store, settings, failed[0]) and kept(store, settings, failed[1])


def test_max_runs_per_dag_keeps_the_newest(tmp_path: Path, store_url: str) -> None:
    settings = load_settings(home=tmp_path / "home", env={
        "NBFLOW_DATABASE_URL": store_url, "NBFLOW_RETENTION_MAX_RUNS_PER_DAG": "2", "NBFLOW_RETENTION_DAYS": "0",
        "NBFLOW_INLINE_OUTPUT_BYTES": "16"})
    with Store.open(settings) as store:
        made = runs(make_dag("etl"), settings, store, 4)
        doomed = doomed_runs(store, Policy.from_settings(settings, later(1000)))
        assert [(r.run_id, r.reason) for r in doomed] == [(made[0]["run_id"], "max_runs"), (made[1]["run_id"], "max_runs")]
        clean_at(store, settings, datetime.now(UTC))
        assert gone(store, settings, made[0]) and gone(store, settings, made[1])
        assert kept(store, settings, made[2]) and kept(store, settings, made[3])


def test_the_run_a_schedule_goes_on_from_is_kept(settings: Any, store: Store) -> None:
    etl = make_dag("etl")
    scheduled = run_dag(etl, logical_date=datetime(2024, 1, 1, tzinfo=UTC), run_type="scheduled", executor="inline",
                        store=store, settings=settings)
    manual = runs(etl, settings, store, 2)
    clean_at(store, settings, later(31))
    assert store.get_run("etl", scheduled.run_id) is not None  # the newest scheduled run
    assert gone(store, settings, manual[0]) and kept(store, settings, manual[1])


def test_a_dag_filter_touches_only_that_dag(settings: Any, store: Store) -> None:
    etl, other = runs(make_dag("etl"), settings, store, 2), runs(make_dag("other"), settings, store, 2)
    report = clean_at(store, settings, later(31), dag_id="other")
    assert [r.run_id for r in report.runs] == [other[0]["run_id"]]
    assert kept(store, settings, etl[0]) and gone(store, settings, other[0])


def test_batches_and_cleaners_at_once_delete_each_run_once(settings: Any, store: Store) -> None:
    made = runs(make_dag("etl"), settings, store, 7)
    one = clean_at(store, settings, later(31), batch_size=2, max_batches=1)
    assert len(one.runs) == 2 and one.more

    reports: list[Any] = []
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def cleaner() -> None:
        with Store(store.url, busy_timeout=10.0) as own:
            start.wait()
            try:
                reports.append(clean_at(own, settings, later(31), batch_size=1))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    threads = [threading.Thread(target=cleaner) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    deleted = [r.run_id for report in reports for r in report.runs]
    assert sorted(deleted) == sorted(r["run_id"] for r in made[2:6])  # each once; the last stays
    assert all(gone(store, settings, r) for r in made[:6]) and kept(store, settings, made[6])


def test_usage_per_dag_and_what_the_settings_would_free(settings: Any, store: Store) -> None:
    made = runs(make_dag("etl"), settings, store, 3)
    rows = {u.dag_id: u for u in usage(store, Policy.from_settings(settings, later(31)),
                                       logs_folder=settings.logs_folder, artifacts_folder=settings.artifacts_folder)}
    etl = rows["etl"]
    assert etl.runs == 3 and etl.rows == 3 + 3 * 4  # runs, and one instance, try, output and xcom each
    assert etl.log_bytes > 0 and etl.artifact_bytes > 0
    assert etl.freeable_runs == 2 and 0 < etl.freeable_bytes < etl.log_bytes + etl.artifact_bytes
    assert made


def test_orphans_are_files_no_run_points_to(settings: Any, store: Store) -> None:
    (run,) = runs(make_dag("etl"), settings, store, 1)
    logs, artifacts = Path(settings.logs_folder), Path(settings.artifacts_folder)
    ghost = logs / "etl" / "manual__ghost"
    ghost.mkdir(parents=True)
    (ghost / "1.log").write_text("left behind")
    lost_dag = artifacts / "deleted_dag" / "run1" / "t"
    lost_dag.mkdir(parents=True)
    (lost_dag / "output.json").write_text("[]")
    stray = logs / "stray.txt"
    stray.write_text("?")
    loose = artifacts / "notebooks" / "20260101T000000-abcd"  # a notebook run outside any task
    loose.mkdir(parents=True)

    found = orphans(store, logs_folder=logs, artifacts_folder=artifacts)
    assert sorted(found) == sorted([ghost, artifacts / "deleted_dag" / "run1", stray])

    files, size = delete_orphans(found, logs_folder=logs, artifacts_folder=artifacts)
    assert files == 3 and size > 0
    assert not ghost.exists() and not (artifacts / "deleted_dag").exists() and not stray.exists()
    assert loose.is_dir() and kept(store, settings, run) and logs.is_dir()
    assert orphans(store, logs_folder=logs, artifacts_folder=artifacts) == []


def test_events_a_deleted_run_consumed_stay_consumed(settings: Any, store: Store) -> None:
    store.register_asset_consumer("consumer")
    event = store.emit_asset_event("s3://bucket/data", source="cli")
    common = dict(dag_id="consumer", logical_date=datetime(2024, 1, 1, tzinfo=UTC), data_interval_start=None,
                  data_interval_end=None, conf=None, state="success", task_rows=[])
    first = store.create_run(run_id="asset_triggered__1", run_type="asset_triggered", consume=[event["id"]], **common)
    store.create_run(run_id="manual__2", run_type="manual", **common)
    assert store.pending_asset_events("consumer", ["s3://bucket/data"]) == []

    report = clean_at(store, settings, later(31))
    assert [r.pk for r in report.runs] == [first]
    assert store.pending_asset_events("consumer", ["s3://bucket/data"]) == []  # not taken again
    assert store.triggering_asset_events(first) == {}
