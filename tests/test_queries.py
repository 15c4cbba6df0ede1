"""The reads the views share (nbflow.store.queries), on every backend: what the command line, the
widgets and the REST API get for the same question."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nbflow.errors import RunNotFoundError, TaskNotFoundError
from nbflow.store import Store, queries

T0 = datetime(2024, 3, 1, 6, 0, tzinfo=UTC)
DEFINITION = {"tasks": [{"task_id": "extract", "kind": "python"}, {"task_id": "report", "kind": "notebook"},
                        {"task_id": "load"}]}


def make_run(store: Store, run_id: str, day: int, *, dag_id: str = "etl", state: str = "success",
             task_ids: tuple[str, ...] = ("load", "report", "extract")) -> int:
    """A run whose task rows are created in an order other than the DAG's (as a cleared run's may be)."""
    when = T0 + timedelta(days=day)
    run_pk = store.create_run(
        dag_id=dag_id, run_id=run_id, run_type="manual", logical_date=when, data_interval_start=when,
        data_interval_end=when, conf={}, state=state,
        task_rows=[{"task_id": t, "state": "scheduled", "max_tries": 2} for t in task_ids],
    )
    assert run_pk is not None
    return run_pk


@pytest.fixture
def etl(store: Store) -> Store:
    """DAG etl with three runs (day 0 failed, day 1 success, day 2 running), DAG idle with none."""
    store.upsert_dag("etl", definition=DEFINITION, schedule="0 6 * * *", timezone="UTC")
    store.upsert_dag("idle")
    make_run(store, "r0", 0, state="failed")
    make_run(store, "r1", 1)
    run_pk = make_run(store, "r2", 2, state="running")
    store.record(run_pk, task_changes=[{"task_id": "extract", "state": "success"},
                                       {"task_id": "report", "state": "running"}])
    return store


def test_latest_run_and_run_or_latest(etl: Store) -> None:
    assert queries.latest_run(etl, "etl")["run_id"] == "r2"
    assert queries.latest_run(etl, "idle") is None
    assert queries.run_or_latest(etl, "etl", None)["run_id"] == "r2"
    assert queries.run_or_latest(etl, "etl", "r0")["run_id"] == "r0"
    assert queries.run_or_latest(etl, "etl", "nope") is None


def test_task_states_keep_the_planned_order(etl: Store) -> None:
    run = etl.get_run("etl", "r2")
    assert list(queries.task_states(etl, run["id"]).items()) == [
        ("load", "scheduled"), ("report", "running"), ("extract", "success")]


def test_runs_with_task_instances_newest_first(etl: Store) -> None:
    found = queries.runs_with_task_instances(etl, "etl", 2)
    assert [f.run["run_id"] for f in found] == ["r2", "r1"]
    assert [ti["task_id"] for ti in found[0].task_instances] == ["load", "report", "extract"]
    assert queries.runs_with_task_instances(etl, "idle", None) == []


def test_runs_grid_oldest_first_with_each_runs_states(etl: Store) -> None:
    grid = queries.runs_grid(etl, "etl", 2)
    assert [r["run_id"] for r in grid.runs] == ["r1", "r2"]  # the last two runs, as time reads
    assert grid.states == {"r1": {"load": "scheduled", "report": "scheduled", "extract": "scheduled"},
                           "r2": {"load": "scheduled", "report": "running", "extract": "success"}}
    assert queries.runs_grid(etl, "idle", 5) == queries.RunsGrid([], {})


def test_pause_flag_definition_kind_and_dag_order(etl: Store) -> None:
    assert queries.is_paused(etl, "etl") is False
    etl.set_paused("etl", True)
    assert queries.is_paused(etl, "etl") is True
    assert queries.is_paused(etl, "unknown") is False
    assert [t["task_id"] for t in queries.definition_tasks(etl.get_dag("etl"))] == ["extract", "report", "load"]
    assert queries.definition_tasks(etl.get_dag("idle")) == [] and queries.definition_tasks(None) == []
    assert queries.task_kind(etl, "etl", "report") == "notebook"
    assert queries.task_kind(etl, "etl", "load") == "custom"  # no kind stored
    assert queries.task_kind(etl, "etl", "gone") == "custom"
    run = etl.get_run("etl", "r1")
    instances = etl.get_task_instances(run["id"]) + [{"task_id": "zzz", "id": 0}]
    assert [ti["task_id"] for ti in queries.in_dag_order(etl, "etl", instances)] == ["extract", "report", "load", "zzz"]


def test_dags_overview_counts_recent_runs_and_import_errors(etl: Store) -> None:
    etl.record_import_error("/dags/broken.py", "SyntaxError: bad", "Traceback ...")
    found = queries.dags_overview(etl, 2)
    assert [o.dag_id for o in found.dags] == ["etl", "idle"]
    etl_overview, idle = found.dags
    assert [r["run_id"] for r in etl_overview.recent_runs] == ["r2", "r1"]
    assert etl_overview.last_run["run_id"] == "r2" and etl_overview.paused is False
    assert etl_overview.counts == {"failed": 1, "success": 1, "running": 1}
    assert idle.recent_runs == [] and idle.last_run is None and idle.counts == {}
    assert [e["fileloc"] for e in found.import_errors] == ["/dags/broken.py"]
    # one DAG alone reads its own counts; recent=0 reads no runs
    alone = queries.dag_overview(etl, etl.get_dag("etl"), 0)
    assert alone.recent_runs == [] and alone.counts == etl_overview.counts


def test_task_instance_detail_with_tries_logs_and_output(etl: Store) -> None:
    run = etl.get_run("etl", "r2")
    etl.record(run["id"], task_changes=[{"task_id": "extract", "try_number": 3, "log_path": "/logs/3.log"}],
               tries=[{"task_id": "extract", "try_number": n, "state": "failed", "log_path": f"/logs/{n}.log"}
                      for n in (1, 2)] + [{"task_id": "extract", "try_number": 3, "state": "success",
                                           "log_path": "/logs/3.log"}],
               outputs=[{"task_id": "extract", "value_json": "[1, 2]", "size": 6}])
    detail = queries.task_instance_detail(etl, "etl", "r2", "extract")
    assert detail.run["id"] == run["id"] and detail.ti["state"] == "success"
    assert [t["try_number"] for t in detail.tries] == [1, 2, 3]
    assert detail.log_paths == ["/logs/3.log", "/logs/2.log", "/logs/1.log"]  # newest first, once each
    assert detail.log_path == "/logs/3.log"
    assert detail.output is not None and detail.output["value_json"] == "[1, 2]"

    waiting = queries.task_instance_detail(etl, "etl", "r2", "load")
    assert waiting.tries == [] and waiting.log_paths == [] and waiting.log_path is None and waiting.output is None

    with pytest.raises(RunNotFoundError, match="'nope'"):
        queries.task_instance_detail(etl, "etl", "nope", "extract")
    with pytest.raises(TaskNotFoundError, match="Its tasks: extract, load, report"):
        queries.task_instance_detail(etl, "etl", "r2", "gone")


# -- a notebook task's files (no store) -------------------------------------------------------------


def test_notebook_files_from_the_newest_log_naming_them(tmp_path: Path) -> None:
    old, new, silent = tmp_path / "1.log", tmp_path / "2.log", tmp_path / "3.log"
    old.write_text("nbflow: output notebook /out/old.ipynb\n")
    new.write_text("hello\nnbflow: output notebook /out/new.ipynb\nnbflow: report /out/new.html\n")
    silent.write_text("nothing about notebooks\n")
    artifacts = tmp_path / "artifacts"
    logs = [str(silent), str(tmp_path / "missing.log"), str(new), str(old)]
    assert queries.notebook_files(artifacts, "d", "r", "t", logs) == ("/out/new.ipynb", "/out/new.html")
    assert queries.notebook_files(artifacts, "d", "r", "t", [str(old)]) == ("/out/old.ipynb", None)


def test_notebook_files_from_the_artifacts_folder(tmp_path: Path) -> None:
    from nbflow.paths import task_folder

    root = tmp_path / "artifacts"
    assert queries.notebook_files(root, "d", "manual__1:00", "t") == (None, None)
    folder = task_folder(root, "d", "manual__1:00", "t")  # the safe names a task writes under
    folder.mkdir(parents=True)
    (folder / "b.ipynb").write_text("{}")
    (folder / "a.ipynb").write_text("{}")
    assert queries.notebook_files(root, "d", "manual__1:00", "t") == (str(folder / "a.ipynb"), None)
    (folder / "other.html").write_text("<html/>")
    assert queries.notebook_files(root, "d", "manual__1:00", "t") == (str(folder / "a.ipynb"), str(folder / "other.html"))
    (folder / "a.html").write_text("<html/>")
    assert queries.notebook_files(root, "d", "manual__1:00", "t") == (str(folder / "a.ipynb"), str(folder / "a.html"))
    raw = root / "e" / "r:1" / "t"  # a folder under the raw ids, from before names were made safe
    raw.mkdir(parents=True)
    (raw / "n.ipynb").write_text("{}")
    assert queries.notebook_files(root, "e", "r:1", "t", [str(tmp_path / "no.log")]) == (str(raw / "n.ipynb"), None)
