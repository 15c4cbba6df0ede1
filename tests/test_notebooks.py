"""Every notebook in ``notebooks/`` runs end to end on a real kernel, with a temporary NBFLOW_HOME.

The kernel inherits the environment of this process, so ``NBFLOW_HOME`` (set by the fixture) is
the kernel's too: nothing the examples record lands in the user's home.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest

from nbflow.jupyter.cyto import cytoscape_style

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
EXAMPLES = sorted(NOTEBOOKS.glob("*.ipynb"))
PICTURES = NOTEBOOKS / "pictures"
CHECKS = {
    "01-getting-started.ipynb": ["total = 6", "hello_pipeline", "'clean': [1, 2, 3]", "success"],
    "02-scheduling.ipynb": [
        "Fri 2024-03-08 07:00 EST = 12:00 UTC",
        "Mon 2024-03-11 07:00 EDT = 11:00 UTC",
        "Mon 2024-03-04 07:00 EST success report for 2024-03-04",
        "backfill__2024-03-08T12:00:00+00:00",
        "morning_report backfill:",  # the progress bar (a tqdm widget in a notebook)
    ],
    "03-the-graph.ipynb": [
        "'clean.double': 'success'", "'skip': 'skipped'", "runs in the grid: 1",
        "2001 tasks drawn as 17 elements: ['first', 'region0 ×250',",
        "after opening region0: 19 nodes", "shard_0–24 ×25",
        f"{len(cytoscape_style()) + 1} style rules",  # nbflow's rules (counted, not copied) and the one the notebook adds
    ],
    "08-mapping-and-assets.ipynb": [
        "success {'list_files': 'success', 'load': 'failed', 'total': 'success'}",
        "load: [9, 9, 8] total: 26", "(1 failed, 3 success)", "(4 success)",
        "one_file.read[2] failed", "one_file.check[2] upstream_failed", "one_file.check[1] success",
        "asset_triggered success", "1 update(s) of file:///data/sales.csv, from write_sales",
        "consumed by: sales_report",
    ],
    "04-notebook-reports.ipynb": [
        "success today's total: 32", "report (success)", "sales-report.html | chart of the regions: True | total shown: True",
        "scheduled report_sales-report", "0 7 * * 1-5 (Europe/Paris)",
    ],
    "05-coming-from-airflow.ipynb": [
        "-from airflow.sdk import dag, task, task_group", "+from nbflow import dag, task, task_group",
        "+from nbflow import FailTask as AirflowFailException", "1 file rewritten",
        "DAG orders", "SUCCESS", "[3 instances: 3 success]", "skip_publish                     skipped",
    ],
    "06-operating.ipynb": [
        "[nbflow] nightly_load.load failed", "KST (Asia/Seoul)", "Error: ValueError: the sales file is empty",
        "failed | success", "over its memory_limit of 200 MiB, and was killed", "nightly_load",
        "would delete 1 run", "ok    store:",
    ],
    "07-dask.ipynb": [
        "success | sum of squares: 55 | ran in", "not in this kernel: True", "splitting the job into 6 parts",
        "parts ran on one of the cluster's workers: True", "offers GPU=1",
    ],
    "sales-report.ipynb": ["Sales on 2024-01-01: 6"],
    "report.ipynb": ["Daily sales for 2024-01-01: 6"],
}


def execute(path: Path, cwd: Path, parameters: dict[str, Any] | None = None) -> Any:
    import shutil

    import papermill

    # as when run from notebooks/: the tour's notebooks find the report notebooks beside them
    for helper in NOTEBOOKS.glob("*.ipynb"):
        if not helper.name[0].isdigit():
            shutil.copy(helper, cwd / helper.name)

    output = cwd / f"out-{path.name}"
    papermill.execute_notebook(str(path), str(output), parameters=parameters or {}, cwd=str(cwd),
                               kernel_name="python3", progress_bar=False, log_output=False,
                               execution_timeout=120)
    return nbformat.read(str(output), as_version=4)


def texts(notebook: Any) -> str:
    """Everything the cells printed or displayed, as text."""
    parts = []
    for cell in notebook.cells:
        previous = None
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                # one print may reach the notebook in several stream messages: join them as
                # Jupyter shows them, with nothing in between
                if previous is not None and previous.get("output_type") == "stream" and previous.get("name") == out.get("name"):
                    parts[-1] += out["text"]
                else:
                    parts.append(out["text"])
            previous = out
            for mime in ("text/plain", "text/html"):
                if mime in out.get("data", {}):
                    parts.append(out["data"][mime])
    return "\n".join(parts)


def test_there_are_examples_and_each_is_checked() -> None:
    assert {p.name for p in EXAMPLES} == set(CHECKS)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_notebook_names_its_kernel(path: Path) -> None:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    assert all(not cell.get("outputs") for cell in notebook["cells"]), "store examples without outputs"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_end_to_end(path: Path, nbflow_home: Path, tmp_path: Path) -> None:
    executed = execute(path, tmp_path)
    text = texts(executed)
    for expected in CHECKS[path.name]:
        assert expected in text, f"{path.name}: {expected!r} not in the outputs:\n{text[-3000:]}"
    errors = [out for cell in executed.cells for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    assert not errors
    check_pictures(path, executed)


def pictures_named(path: Path) -> list[str]:
    """The graph pictures a tour notebook's markdown shows, in order (``pictures/<name>.svg``)."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    return [name for cell in notebook["cells"] if cell["cell_type"] == "markdown"
            for name in re.findall(r"\]\(pictures/([^)]+\.svg)\)", "".join(cell["source"]))]


def check_pictures(path: Path, executed: Any) -> None:
    """Outputs are cleared in git, so on GitHub a tour notebook shows its graphs through pictures in
    its markdown: each must be the static graph the cell before it draws (NBFLOW_REDRAW_PICTURES=1
    redraws them)."""
    drawn = [out["data"]["image/svg+xml"] for cell in executed.cells for out in cell.get("outputs", [])
             if "image/svg+xml" in out.get("data", {}) and "nbflow-dag" in out["data"].get("text/html", "")]
    names = pictures_named(path)
    assert len(names) == len(drawn), f"{path.name} draws {len(drawn)} graphs but shows {len(names)} pictures"
    for name, svg in zip(names, drawn):
        picture = PICTURES / name
        if os.environ.get("NBFLOW_REDRAW_PICTURES") == "1":
            picture.write_text(svg, encoding="utf-8")
        assert picture.is_file() and picture.read_text(encoding="utf-8") == svg, (
            f"notebooks/pictures/{name} is not the graph {path.name} draws: redraw the pictures with "
            "NBFLOW_REDRAW_PICTURES=1 .venv/bin/python -m pytest tests/test_notebooks.py")


def test_every_picture_is_shown_by_a_tour_notebook() -> None:
    shown = {name for path in EXAMPLES for name in pictures_named(path)}
    assert {p.name for p in PICTURES.glob("*.svg")} == shown


def test_example_dags_are_recorded_with_their_notebook(nbflow_home: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A Jupyter server tells the kernel its notebook in JPY_SESSION_NAME; %%dag records that path."""
    from nbflow.store import Store

    path = NOTEBOOKS / "01-getting-started.ipynb"
    monkeypatch.setenv("JPY_SESSION_NAME", str(path))
    execute(path, tmp_path)
    with Store.open() as store:
        row = store.get_dag("hello_pipeline")
        runs = store.list_runs("hello_pipeline")
    assert row is not None and row["source_kind"] == "notebook" and row["fileloc"] == str(path)
    assert len(runs) == 2 and {r["state"] for r in runs} == {"success"}


def test_report_takes_parameters(nbflow_home: Path, tmp_path: Path) -> None:
    executed = execute(NOTEBOOKS / "report.ipynb", tmp_path,
                       parameters={"title": "Weekly", "day": "2024-06-03", "rows": [10, 20], "factor": 2})
    assert "Weekly for 2024-06-03: 60" in texts(executed)


def test_example_notebooks_are_dag_sources(tmp_path: Path) -> None:
    """Pointed at by dags_folder, the examples give their DAGs without running their other cells."""
    from nbflow.engine.discovery import collect

    bag = collect([NOTEBOOKS])
    assert not bag.failures
    assert set(bag.dags) == {"hello_pipeline", "morning_report", "daily_sales", "daily_files", "per_file", "fan_out"}
    assert bag.dags["morning_report"].fileloc == str(NOTEBOOKS / "02-scheduling.ipynb")


def test_report_runs_as_a_notebook_task_and_hands_back_its_outputs(nbflow_home: Path) -> None:
    from nbflow import DAG
    from nbflow.operators.notebook import NotebookOperator

    with DAG("report_task", timezone="UTC") as dag:
        NotebookOperator(task_id="report", notebook=str(NOTEBOOKS / "report.ipynb"),
                         parameters={"rows": [1, 2], "factor": 10, "day": "{{ ds }}"}, report="html")
    run = dag.test(logical_date="2024-06-03")
    assert run.state == "success", run.errors
    assert run.outputs["report"] == {"total": 30, "day": "2024-06-03"}
    folder = nbflow_home / "artifacts" / "report_task"
    assert len(list(folder.rglob("report.ipynb"))) == 1 and len(list(folder.rglob("report.html"))) == 1
