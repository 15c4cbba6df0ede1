"""``nbflow db clean`` and ``nbflow storage`` as a user runs them, over runs the engine made (so their
logs and artifacts exist). Runs are made old by giving them an old end date."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from nbflow import DAG, task
from nbflow.engine.runs import run_dag
from nbflow.paths import safe_path_part
from nbflow.settings import load_settings
from nbflow.store import Store

from .conftest import nbflow, one_line


def make_dag(dag_id: str) -> DAG:
    with DAG(dag_id, timezone="UTC", schedule=None) as d:
        @task
        def work(ds):
            print(f"working on {ds}")
            return list(range(50))

        work()
    return d


@pytest.fixture
def made(nbflow_home: Path) -> dict[str, list[dict[str, Any]]]:
    """Three runs of etl and two of other; all but the newest of each ended 40 days ago."""
    settings = load_settings(home=nbflow_home, env={"NBFLOW_INLINE_OUTPUT_BYTES": "16"})
    found: dict[str, list[dict[str, Any]]] = {}
    with Store.open(settings) as store:
        for dag_id, count in (("etl", 3), ("other", 2)):
            dag = make_dag(dag_id)
            for day in range(count):
                run = run_dag(dag, logical_date=datetime(2024, 1, day + 1, tzinfo=UTC), executor="inline",
                              store=store, settings=settings)
                row = store.get_run(dag_id, run.run_id)
                if day < count - 1:
                    store.update_run(row["id"], end_date=datetime.now(UTC) - timedelta(days=40))
                found.setdefault(dag_id, []).append(row)
    return found


def exists(home: Path, run: dict[str, Any]) -> bool:
    with Store.open(load_settings(home=home)) as store:
        row = store.get_run_by_pk(run["id"])
    folder = home / "logs" / safe_path_part(run["dag_id"]) / safe_path_part(run["run_id"])
    artifacts = home / "artifacts" / safe_path_part(run["dag_id"]) / safe_path_part(run["run_id"])
    assert (row is None) == (not folder.exists()) == (not artifacts.exists()), "rows and files disagree"
    return row is not None


def clean(*args: str, home: Path, stdin: Any = subprocess.DEVNULL, check: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NBFLOW_HOME": str(home)}
    result = subprocess.run([sys.executable, "-m", "nbflow", "db", "clean", *args], capture_output=True, text=True,
                            env=env, stdin=stdin, timeout=120)
    assert result.returncode == check, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def test_dry_run_lists_and_deletes_nothing_then_yes_deletes(nbflow_home: Path, made: Any) -> None:
    out = clean("--dry-run", home=nbflow_home).stdout
    assert out.startswith("would delete 3 runs (runs older than retention_days = 30, failed ones after 90 days)")
    for run in (made["etl"][0], made["etl"][1], made["other"][0]):
        assert run["run_id"] in out and exists(nbflow_home, run)
    assert made["etl"][2]["run_id"] not in out

    out = clean("--yes", home=nbflow_home).stdout
    assert out.startswith("deleted 3 runs,")
    assert not exists(nbflow_home, made["etl"][0]) and not exists(nbflow_home, made["other"][0])
    assert exists(nbflow_home, made["etl"][2]) and exists(nbflow_home, made["other"][1])  # the last runs
    assert clean("--yes", home=nbflow_home).stdout.startswith("nothing to delete")


def test_without_yes_it_refuses_when_it_cannot_ask(nbflow_home: Path, made: Any) -> None:
    result = clean("--older-than", "30d", home=nbflow_home, check=2)
    assert "add --yes" in one_line(result) and "3 runs" in result.stderr
    assert all(exists(nbflow_home, run) for runs in made.values() for run in runs)


def test_it_asks_on_a_terminal(nbflow_home: Path, made: Any) -> None:
    main, other = os.openpty()
    try:
        os.write(main, b"n\n")
        result = clean("--dag", "other", home=nbflow_home, stdin=other, check=1)
        assert "delete 1 run" in result.stdout and "nothing deleted" in result.stdout
        assert exists(nbflow_home, made["other"][0])
        os.write(main, b"y\n")
        assert "deleted 1 run" in clean("--dag", "other", home=nbflow_home, stdin=other).stdout
    finally:
        os.close(main)
        os.close(other)
    assert not exists(nbflow_home, made["other"][0]) and exists(nbflow_home, made["etl"][0])


def test_dag_filter_and_explicit_cutoffs(nbflow_home: Path, made: Any) -> None:
    out = clean("--dag", "etl", "--older-than", "41d", "--yes", home=nbflow_home).stdout
    assert out.startswith("nothing to delete")
    out = clean("--dag", "etl", "--before", (datetime.now(UTC) - timedelta(days=39)).isoformat(), "--yes",
                home=nbflow_home).stdout
    assert out.startswith("deleted 2 runs")
    assert not exists(nbflow_home, made["etl"][1]) and exists(nbflow_home, made["other"][0])


@pytest.mark.parametrize(("args", "said"), [
    (("--older-than", "a month"), "argument --older-than: 'a month' is not a duration"),
    (("--before", "someday"), "--before"),
    (("--dag", "nope"), "no DAG with id 'nope'"),
    (("--older-than", "3d", "--before", "2024-01-01"), "not allowed with argument"),
])
def test_bad_input_is_one_line(nbflow_home: Path, args: tuple[str, ...], said: str) -> None:
    result = clean(*args, "--yes", home=nbflow_home, check=result_code(said))
    assert said in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr


def result_code(said: str) -> int:
    return 1 if said.startswith("no DAG") or said == "--before" else 2


def test_storage_per_dag_and_orphans(nbflow_home: Path, made: Any) -> None:
    out = nbflow("storage", home=nbflow_home).stdout
    etl = next(line for line in out.splitlines() if line.startswith("etl "))
    assert etl.split()[1:3] == ["3", "12"]  # runs; and rows: 3 runs, 3 instances, 3 tries, 3 outputs
    assert "2 runs," in etl and "retention_days = 30" in out

    ghost = nbflow_home / "logs" / "etl" / "manual__gone"
    ghost.mkdir(parents=True)
    (ghost / "1.log").write_text("left behind")
    out = nbflow("storage", "--orphans", home=nbflow_home).stdout
    assert str(ghost) in out and "1 orphan" in out
    assert nbflow("storage", "--delete", home=nbflow_home, check=2).returncode == 2
    assert "deleted 1 file" in nbflow("storage", "--orphans", "--delete", "--yes", home=nbflow_home).stdout
    assert not ghost.exists() and exists(nbflow_home, made["etl"][0])
    assert "no orphan files" in nbflow("storage", "--orphans", home=nbflow_home).stdout


def test_an_old_runs_executed_notebook_and_report_go_with_it(nbflow_home: Path) -> None:
    import nbformat
    from nbformat import v4

    from nbflow.operators import NotebookOperator

    notebook = nbflow_home / "report.ipynb"
    nbformat.write(v4.new_notebook(cells=[v4.new_code_cell("print(6 * 7)")]), notebook)
    with DAG("report", timezone="UTC", schedule=None) as dag:
        NotebookOperator(task_id="render", notebook=str(notebook), report="html")
    settings = load_settings(home=nbflow_home)
    with Store.open(settings) as store:
        old, new = (run_dag(dag, logical_date=datetime(2024, 1, day, tzinfo=UTC), store=store, settings=settings)
                    for day in (1, 2))
        assert old.state == new.state == "success"
        store.update_run(store.get_run("report", old.run_id)["id"], end_date=datetime.now(UTC) - timedelta(days=31))
    outputs = [nbflow_home / "artifacts" / "report" / safe_path_part(run.run_id) / "render" for run in (old, new)]
    assert all((folder / "report.ipynb").is_file() and (folder / "report.html").is_file() for folder in outputs)

    assert clean("--yes", home=nbflow_home).stdout.startswith("deleted 1 run")
    assert not outputs[0].parent.exists() and (outputs[1] / "report.html").is_file()
