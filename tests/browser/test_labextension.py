"""nbflow's JupyterLab extension in a real Lab: the DAGs sidebar, the DAG view (graph, grid, task
details and log), reports, the schedule dialog and failure notifications.

DAG files go into the Lab's ``NBFLOW_HOME/dags``; the extension talks to the server extension's REST
API. Assertions read the page's DOM and the live cytoscape instance (``container._cyreg.cy``), never
pixels. Each test leaves a screenshot under ``tests/browser/screenshots/``.
"""

from __future__ import annotations

import json
import re
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from nbflow.jupyter.graph import STATE_STYLES

from .conftest import Lab, LabPage, fan_source, rgb

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _dag_file(lab: Lab, name: str, source: str) -> Path:
    folder = lab.nbflow_home / "dags"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


def _uid() -> str:
    return uuid.uuid4().hex[:6]


def _hello_dag(lab: Lab, dag_id: str, sleep: float = 0.0) -> None:
    """extract -> (double, count) -> report, all Python; extract takes ``sleep`` seconds."""
    _dag_file(lab, dag_id, f"""\
        import time

        from nbflow import DAG, task

        with DAG("{dag_id}", schedule="0 6 * * *", start_date="2024-01-01", timezone="Europe/Paris",
                 description="four little tasks") as dag:
            @task
            def extract():
                print("extracting three rows")
                time.sleep({sleep})
                return [1, 2, 3]

            @task
            def double(rows):
                return [r * 2 for r in rows]

            @task
            def count(rows):
                return len(rows)

            @task
            def report(doubled, n):
                print(f"report: {{n}} rows")
                return f"{{n}} rows, total {{sum(doubled)}}"

            rows = extract()
            report(double(rows), count(rows))
        """)


_GRAPH_JS = """
(dagId) => {
    const view = document.getElementById('nbflow-dag-' + dagId);
    if (!view) return null;
    const canvas = view.querySelector('.nbflow-Graph-canvas');
    const cy = canvas && canvas._cyreg && canvas._cyreg.cy;
    if (!cy || cy.destroyed()) return null;
    return {
        drawMs: Number(canvas.dataset.renderMs || 'NaN'),
        runState: view.dataset.runState || null,
        edges: cy.edges().length,
        edgeLabels: cy.edges('[label]').map(e => ({
            source: e.source().id(), target: e.target().id(), label: e.data('label'), drawn: e.pstyle('label').value,
        })),
        nodes: cy.nodes('[!is_group]').map(n => ({
            id: n.id(), state: n.data('state'), shape: n.pstyle('shape').value,
            background: n.pstyle('background-color').value, label: n.data('label'),
        })),
    };
}
"""

_ROW_JS = """
(dagId) => {
    const row = document.querySelector(`#nbflow-sidebar li[data-dag-id="${dagId}"]`);
    if (!row) return null;
    const badge = row.querySelector('.nbflow-DagBadge');
    return {
        text: row.innerText,
        badgeState: badge.dataset.state,
        badgeText: badge.textContent,
        badgeColour: getComputedStyle(badge).backgroundColor,
        chips: Array.from(row.querySelectorAll('.nbflow-RunChip')).map(c => c.dataset.state),
        paused: row.classList.contains('nbflow-mod-paused'),
    };
}
"""


class NbflowUI:
    """The steps a person takes in Lab with nbflow's extension, on top of :class:`LabPage`."""

    def __init__(self, lab_page: LabPage) -> None:
        self.lp = lab_page
        self.page = lab_page.page
        self.lab = lab_page.lab

    def open_lab(self, path: str | None = None) -> None:
        workspace = f"t{uuid.uuid4().hex[:12]}"
        where = f"lab/workspaces/{workspace}" + (f"/tree/{path}" if path else "")
        self.page.goto(self.lab.url(where), wait_until="domcontentloaded")
        self.page.wait_for_function("() => !!window.jupyterapp", timeout=30_000)
        self.page.evaluate("async () => { await window.jupyterapp.restored; }")
        self.page.wait_for_selector('li.lm-TabBar-tab[data-id="nbflow-sidebar"]', timeout=30_000)

    def open_sidebar(self) -> None:
        self.page.click('li.lm-TabBar-tab[data-id="nbflow-sidebar"]')
        self.page.wait_for_selector("#nbflow-sidebar .nbflow-DagList, #nbflow-sidebar .nbflow-Empty", state="visible")

    def row(self, dag_id: str) -> dict[str, Any] | None:
        return self.page.evaluate(_ROW_JS, dag_id)

    def wait_row(self, dag_id: str, check: Any = lambda row: True, what: str = "", timeout: float = 30) -> dict[str, Any]:
        seen: list[Any] = [None]

        def ready() -> bool:
            seen[0] = self.row(dag_id)
            return seen[0] is not None and bool(check(seen[0]))

        self.lp.wait_for(ready, what or f"the sidebar to list {dag_id}", timeout=timeout, details=lambda: str(seen[0]))
        return seen[0]

    def click_in_row(self, dag_id: str, selector: str) -> None:
        self.page.click(f'#nbflow-sidebar li[data-dag-id="{dag_id}"] {selector}')

    def graph(self, dag_id: str) -> dict[str, Any] | None:
        return self.page.evaluate(_GRAPH_JS, dag_id)

    def wait_graph(self, dag_id: str, check: Any, what: str, timeout: float = 30) -> dict[str, Any]:
        seen: list[Any] = [None]

        def ready() -> bool:
            seen[0] = self.graph(dag_id)
            return seen[0] is not None and bool(check(seen[0]))

        self.lp.wait_for(ready, what, timeout=timeout, details=lambda: json.dumps(seen[0])[:2000])
        return seen[0]

    def click_task(self, dag_id: str, task_id: str) -> None:
        """Click a task node of the DAG view's graph with the mouse."""
        point = self.page.evaluate(
            """([dagId, taskId]) => {
                const canvas = document.querySelector('#nbflow-dag-' + dagId + ' .nbflow-Graph-canvas');
                const cy = canvas._cyreg.cy;
                const node = cy.getElementById(taskId);
                const rect = canvas.getBoundingClientRect();
                const p = node.renderedPosition();
                return {x: rect.left + p.x, y: rect.top + p.y};
            }""",
            [dag_id, task_id],
        )
        self.page.mouse.click(point["x"], point["y"])
        self.page.wait_for_selector(f'#nbflow-dag-{dag_id} .nbflow-Details-header h3:text-is("{task_id}")')

    def details_text(self, dag_id: str) -> str:
        return self.page.inner_text(f"#nbflow-dag-{dag_id} .nbflow-Details")

    def log_text(self, dag_id: str) -> str:
        return self.page.inner_text(f"#nbflow-dag-{dag_id} .nbflow-Details-log")

    def toasts(self) -> list[str]:
        return self.page.evaluate(
            "() => Array.from(document.querySelectorAll('.Toastify__toast')).map(t => t.innerText)"
        )


@pytest.fixture
def ui(nbflow_lab: Lab, lab_page: LabPage) -> NbflowUI:
    return NbflowUI(lab_page)


def _assert_colours(nodes: list[dict[str, Any]], state: str) -> None:
    expected = rgb(STATE_STYLES[state]["background"])
    for node in nodes:
        assert node["state"] == state, node
        assert rgb(node["background"]) == expected, node


def test_sidebar_trigger_and_watch_success(ui: NbflowUI) -> None:
    dag_id = f"lab_hello_{_uid()}"
    _hello_dag(ui.lab, dag_id)
    ui.open_lab()
    ui.open_sidebar()
    row = ui.wait_row(dag_id)
    assert row["badgeState"] == "no_status" and "no runs" in row["badgeText"]
    assert "next" in row["text"], row  # the next run, in local time
    assert not row["paused"] or "paused" in row["text"]

    ui.click_in_row(dag_id, ".nbflow-Trigger")
    row = ui.wait_row(dag_id, lambda r: r["badgeState"] == "success", "the last run to succeed", timeout=60)
    assert rgb(row["badgeColour"]) == rgb(STATE_STYLES["success"]["background"])
    assert row["chips"] == ["success"]
    ui.page.wait_for_timeout(300)


def test_dag_view_graph_details_and_log(ui: NbflowUI) -> None:
    dag_id = f"lab_view_{_uid()}"
    _hello_dag(ui.lab, dag_id, sleep=4)
    ui.open_lab()
    ui.open_sidebar()
    ui.wait_row(dag_id)
    ui.page.click(f'#nbflow-sidebar li[data-dag-id="{dag_id}"] .nbflow-DagName')
    graph = ui.wait_graph(dag_id, lambda g: len(g["nodes"]) == 4, "a graph of 4 tasks")
    assert graph["edges"] == 4
    _assert_colours(graph["nodes"], "no_status")

    ui.page.click(f"#nbflow-dag-{dag_id} .nbflow-Trigger")
    # While the run is active the view follows it: extract shows as running, in the running colour.
    graph = ui.wait_graph(
        dag_id, lambda g: any(n["id"] == "extract" and n["state"] == "running" for n in g["nodes"]),
        "extract to show as running", timeout=30,
    )
    _assert_colours([n for n in graph["nodes"] if n["id"] == "extract"], "running")
    ui.lp.screenshot("running")
    graph = ui.wait_graph(
        dag_id, lambda g: all(n["state"] == "success" for n in g["nodes"]), "every task to turn green", timeout=60,
    )
    _assert_colours(graph["nodes"], "success")
    assert {n["shape"] for n in graph["nodes"]} == {"round-rectangle"}  # python tasks, as in the notebook widget

    ui.click_task(dag_id, "report")
    ui.lp.wait_for(lambda: "report: 3 rows" in ui.log_text(dag_id), "the task's log to show what it printed")
    details = ui.details_text(dag_id)
    assert "success" in details and "try" in details and "1 of" in details
    assert re.search(r"peak memory\s+\d+ MiB", details), details  # measured in the worker process that ran it
    assert "3 rows, total 12" in details  # the output preview
    # its type, how it is kept and its size, as stored when it was written
    assert "str · json · 18 bytes" in ui.page.inner_text(f"#nbflow-dag-{dag_id} .nbflow-Details-outputInfo")

    # The grid: one row per task, the run's column all green.
    ui.page.click(f'#nbflow-dag-{dag_id} [data-tab="grid"]')
    ui.page.wait_for_selector(f"#nbflow-dag-{dag_id} .nbflow-Grid-table")
    states = ui.page.eval_on_selector_all(
        f"#nbflow-dag-{dag_id} .nbflow-Grid-cell", "cells => cells.map(c => c.dataset.state)"
    )
    assert states == ["success"] * 4
    ui.lp.screenshot("grid")
    ui.page.click(f'#nbflow-dag-{dag_id} [data-tab="graph"]')
    ui.page.wait_for_timeout(300)


def test_the_dag_view_draws_edge_labels_and_display_names(ui: NbflowUI) -> None:
    dag_id = f"lab_labels_{_uid()}"
    _dag_file(ui.lab, dag_id, f"""\
        from nbflow import DAG, Label
        from nbflow.operators import EmptyOperator

        with DAG("{dag_id}", timezone="UTC", dag_display_name="Checked loads") as dag:
            check = EmptyOperator(task_id="check", task_display_name="Check the files")
            load = EmptyOperator(task_id="load")
            alert = EmptyOperator(task_id="alert")
            check >> Label("when valid") >> load
            check >> Label("when broken") >> alert
            load >> EmptyOperator(task_id="done")
        """)
    ui.open_lab()
    ui.open_sidebar()
    ui.wait_row(dag_id)
    ui.page.click(f'#nbflow-sidebar li[data-dag-id="{dag_id}"] .nbflow-DagName')
    graph = ui.wait_graph(dag_id, lambda g: len(g["nodes"]) == 4, "a graph of 4 tasks")
    assert graph["edges"] == 3
    assert sorted((e["source"], e["target"], e["label"], e["drawn"]) for e in graph["edgeLabels"]) == [
        ("check", "alert", "when broken", "when broken"), ("check", "load", "when valid", "when valid"),
    ]
    # display names: what the sidebar, the view's title and the graph show; the id stays in hints
    assert ui.page.inner_text(f'#nbflow-sidebar li[data-dag-id="{dag_id}"] .nbflow-DagName') == "Checked loads"
    assert ui.page.inner_text(f"#nbflow-dag-{dag_id} .nbflow-DagView-title h2") == "Checked loads"
    assert ui.page.locator(".lm-DockPanel-tabBar .lm-TabBar-tabLabel", has_text="Checked loads").count() == 1
    shown = ui.page.evaluate(
        "(dagId) => document.querySelector('#nbflow-dag-' + dagId + ' .nbflow-Graph-canvas')"
        "._cyreg.cy.getElementById('check').data('label')", dag_id)
    assert shown == "Check the files"
    ui.lp.screenshot("edge-labels")


def test_a_mapped_task_is_one_node_with_its_instances_counted_and_listed(ui: NbflowUI) -> None:
    dag_id = f"lab_mapped_{_uid()}"
    _dag_file(ui.lab, dag_id, f"""\
        from nbflow import DAG, task

        with DAG("{dag_id}", timezone="UTC", default_args={{"retries": 0}}) as dag:
            @task
            def files():
                return ["a.csv", "b.csv", "broken.csv", "d.csv"]

            @task
            def load(name):
                if name.startswith("broken"):
                    raise ValueError(f"cannot parse {{name}}")
                return name.upper()

            load.expand(name=files())
        """)
    ui.open_lab()
    ui.open_sidebar()
    ui.wait_row(dag_id)
    ui.page.click(f'#nbflow-sidebar li[data-dag-id="{dag_id}"] .nbflow-DagName')
    graph = ui.wait_graph(dag_id, lambda g: len(g["nodes"]) == 2, "a graph of 2 tasks")
    assert next(n["label"] for n in graph["nodes"] if n["id"] == "load") == "load [ ]"
    ui.page.click(f"#nbflow-dag-{dag_id} .nbflow-Trigger")
    graph = ui.wait_graph(dag_id, lambda g: any(n["id"] == "load" and n["state"] == "failed" for n in g["nodes"]),
                          "the mapped task to fail", timeout=60)
    load = next(n for n in graph["nodes"] if n["id"] == "load")
    assert load["label"] == "load [4] (3✓ 1✗)", load  # one node, counting its four instances
    _assert_colours([load], "failed")
    ui.click_task(dag_id, "load")
    ui.page.wait_for_selector(f"#nbflow-dag-{dag_id} .nbflow-Details-instances")
    text = ui.details_text(dag_id)
    assert "Mapped instances (4)" in text and "cannot parse broken.csv" in text
    rows = ui.page.locator(f"#nbflow-dag-{dag_id} .nbflow-Details-instances tr").all_inner_texts()
    assert rows[0].startswith("[2]") and "failed" in rows[0]  # the failed instance first
    log_note = ui.page.get_attribute(f"#nbflow-dag-{dag_id} .nbflow-Details-log", "data-empty")
    assert log_note.startswith("A mapped task has no log of its own") and "--map-index N" in log_note
    ui.lp.screenshot("mapped")
    ui.page.click(f'#nbflow-dag-{dag_id} [data-tab="grid"]')
    cell = ui.page.wait_for_selector(f'#nbflow-dag-{dag_id} .nbflow-Grid-cell[data-task="load"]')
    title = cell.get_attribute("title") or ""
    assert title.splitlines()[0] == "load · failed · 4 instances: 3 success, 1 failed", title
    assert "manual · " in title and "UTC" in title  # then the run, named, with its id and UTC


def test_a_dag_view_names_its_assets_and_opens_the_dag_on_the_other_side(ui: NbflowUI) -> None:
    uid = _uid()
    writer, reader = f"lab_writer_{uid}", f"lab_reader_{uid}"
    _dag_file(ui.lab, writer, f"""\
        from nbflow import DAG, Asset, task

        with DAG("{writer}", timezone="UTC") as dag:
            @task(outlets=[Asset("s3://lake/{uid}.csv")])
            def write():
                return 1

            write()
        """)
    _dag_file(ui.lab, reader, f"""\
        from nbflow import DAG, Asset, task

        with DAG("{reader}", timezone="UTC", schedule=[Asset("s3://lake/{uid}.csv")]) as dag:
            @task
            def read():
                return 1

            read()
        """)
    ui.open_lab()
    ui.open_sidebar()
    ui.wait_row(writer)
    ui.wait_row(reader)
    ui.page.click(f'#nbflow-sidebar li[data-dag-id="{writer}"] .nbflow-DagName')
    line = ui.page.wait_for_selector(f"#nbflow-dag-{writer} .nbflow-DagView-assets")
    assert line.inner_text() == f"updates s3://lake/{uid}.csv ⟶ {reader}"
    ui.page.click(f"#nbflow-dag-{writer} .nbflow-AssetDag")  # the consumer opens in its own view
    reading = ui.page.wait_for_selector(f"#nbflow-dag-{reader} .nbflow-DagView-assets")
    assert reading.inner_text() == f"⟵ runs on s3://lake/{uid}.csv from {writer}"
    ui.lp.screenshot("assets")


def test_trigger_asks_for_the_params_and_keeps_a_refusal_in_the_dialog(ui: NbflowUI) -> None:
    import sqlite3

    dag_id = f"lab_params_{_uid()}"
    _dag_file(ui.lab, dag_id, f"""\
        from nbflow import DAG, Param
        from nbflow.operators import BashOperator

        with DAG("{dag_id}", timezone="UTC", params={{
            "region": Param("eu", enum=["eu", "us"], description="where the sales are"),
            "days": Param(7, type="integer", minimum=1, maximum=31),
        }}) as dag:
            BashOperator(task_id="fetch", bash_command="echo {{{{ params.region }}}}-{{{{ params.days }}}}")
        """)
    ui.open_lab()
    ui.open_sidebar()
    ui.wait_row(dag_id)
    ui.page.click(f'#nbflow-sidebar li[data-dag-id="{dag_id}"] .nbflow-DagName')
    ui.wait_graph(dag_id, lambda g: len(g["nodes"]) == 1, "a graph of 1 task")
    ui.page.click(f"#nbflow-dag-{dag_id} .nbflow-Trigger")
    dialog = ".nbflow-TriggerDialog"
    ui.page.wait_for_selector(f'{dialog} [data-param="days"]')
    fields = ui.page.eval_on_selector_all(f"{dialog} [data-param]", "els => els.map(e => [e.dataset.param, e.value])")
    assert fields == [["region", "eu"], ["days", "7"]]
    help_text = ui.page.inner_text(f"{dialog} .nbflow-Params")
    assert "where the sales are" in help_text and 'minimum 1' in help_text

    ui.page.fill(f'{dialog} [data-param="days"]', "0")
    ui.page.click(f"{dialog} .nbflow-Submit")
    ui.lp.wait_for(lambda: "param 'days' the value 0, which is not allowed" in ui.page.inner_text(f"{dialog} .nbflow-Error"),
                   "the server's refusal to show in the dialog")
    ui.lp.screenshot("refused")
    ui.page.fill(f'{dialog} [data-param="days"]', "3")
    ui.page.fill(f'{dialog} [data-param="region"]', "us")
    ui.page.click(f"{dialog} .nbflow-Submit")
    ui.page.wait_for_selector(dialog, state="detached")
    with sqlite3.connect(ui.lab.nbflow_home / "nbflow.db") as db:
        confs = [json.loads(row[0]) for row in db.execute("select conf from dag_run where dag_id = ?", (dag_id,))]
    assert confs == [{"days": 3, "region": "us"}]  # one run, and only with what was given

    # the sidebar's trigger asks too; cancelling makes no run. First the sidebar shows the finished run,
    # so that its next redraw cannot replace the row under the click.
    ui.wait_row(dag_id, lambda r: r["badgeState"] == "success", "the sidebar to show the run's success", timeout=60)
    ui.click_in_row(dag_id, ".nbflow-Trigger")
    ui.page.wait_for_selector(f'{dialog} [data-param="region"]')
    ui.page.click(f"{dialog} .jp-mod-reject")
    ui.page.wait_for_selector(dialog, state="detached")
    with sqlite3.connect(ui.lab.nbflow_home / "nbflow.db") as db:
        assert db.execute("select count(*) from dag_run where dag_id = ?", (dag_id,)).fetchone()[0] == 1


def _report_notebook(lab: Lab, name: str) -> Path:
    """A notebook with a cell tagged ``parameters`` (title, rows, factor, verbose)."""
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    parameters = nbformat.v4.new_code_cell(
        'title = "Daily numbers"  # the heading of the report\nrows = [3, 1, 2]\nfactor = 1\nverbose = False'
    )
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# A little report"),
        parameters,
        nbformat.v4.new_code_cell('total = sum(rows) * factor\nprint(f"{title}: the total is {total}")'),
    ]
    path = lab.root_dir / f"{name}.ipynb"
    nbformat.write(notebook, path)
    return path


def test_notebook_task_report(ui: NbflowUI) -> None:
    dag_id = f"lab_report_{_uid()}"
    notebook = _report_notebook(ui.lab, f"{dag_id}_nb")
    _dag_file(ui.lab, dag_id, f"""\
        from nbflow import DAG
        from nbflow.operators import NotebookOperator

        with DAG("{dag_id}", schedule=None) as dag:
            NotebookOperator(task_id="report", notebook={str(notebook)!r},
                             parameters={{"title": "Lab report", "factor": 2}}, report="html")
            # executed into the server's root, so that Lab can open it
            NotebookOperator(task_id="copy", notebook={str(notebook)!r}, parameters={{"title": "Copy"}},
                             output_path={str(ui.lab.root_dir / (dag_id + "_out.ipynb"))!r})
        """)
    ui.open_lab()
    ui.open_sidebar()
    ui.wait_row(dag_id)
    ui.page.click(f'#nbflow-sidebar li[data-dag-id="{dag_id}"] .nbflow-DagName')
    ui.wait_graph(dag_id, lambda g: len(g["nodes"]) == 2, "a graph of two notebook tasks")
    ui.page.click(f"#nbflow-dag-{dag_id} .nbflow-Trigger")
    graph = ui.wait_graph(dag_id, lambda g: all(n["state"] in ("success", "failed") for n in g["nodes"]),
                          "the notebook tasks to finish", timeout=120)
    _assert_colours(graph["nodes"], "success")
    assert {n["shape"] for n in graph["nodes"]} == {"barrel"}  # KIND_SHAPES["notebook"]

    # A notebook executed under the server's root opens in Lab itself.
    ui.click_task(dag_id, "copy")
    ui.page.click(f"#nbflow-dag-{dag_id} .nbflow-OpenNotebook")
    ui.lp.wait_for(lambda: ui.page.evaluate(
        """(path) => Array.from(window.jupyterapp.shell.widgets('main'))
            .some(w => w.context && w.context.path === path)""", f"{dag_id}_out.ipynb"),
        "the output notebook to open in Lab")
    ui.page.locator(".jp-OutputArea-output", has_text="Copy: the total is 6").first.wait_for()
    ui.page.evaluate("(id) => window.jupyterapp.shell.activateById(id)", f"nbflow-dag-{dag_id}")
    ui.click_task(dag_id, "report")
    ui.page.wait_for_selector(f"#nbflow-dag-{dag_id} .nbflow-OpenReport")
    ui.lp.wait_for(lambda: "Lab report: the total is 12" in ui.log_text(dag_id), "the log to hold what the notebook printed")
    ui.page.click(f"#nbflow-dag-{dag_id} .nbflow-OpenReport")
    frame = ui.page.frame_locator(".nbflow-Report iframe")
    frame.locator("text=Lab report: the total is 12").wait_for(timeout=30_000)
    # the report is the rendered notebook, injected parameters included
    assert "A little report" in frame.locator("body").inner_text()
    ui.page.wait_for_timeout(500)


def test_schedule_a_notebook_through_the_dialog(ui: NbflowUI) -> None:
    name = f"lab_sched_{_uid()}"
    _report_notebook(ui.lab, name)
    ui.lp.open_notebook(f"{name}.ipynb")
    ui.page.wait_for_selector('li.lm-TabBar-tab[data-id="nbflow-sidebar"]')
    ui.open_sidebar()
    ui.page.click(".nbflow-ToolbarSchedule")  # the notebook toolbar's "Schedule…"
    dialog = ui.page.locator(".nbflow-ScheduleDialog")
    dialog.wait_for()
    assert dialog.locator('input[name="path"]').input_value() == f"{name}.ipynb"

    # A bad cron says which field is wrong, in the dialog.
    dialog.locator('input[name="cron"]').fill("61 * * * *")
    dialog.locator(".nbflow-CronError").wait_for()
    assert "minute" in dialog.locator(".nbflow-CronError").inner_text().lower()

    dialog.locator('input[name="timezone"]').fill("Asia/Seoul")
    dialog.locator('input[name="cron"]').fill("30 7 * * 1-5")
    ui.lp.wait_for(lambda: dialog.locator(".nbflow-NextRuns li").count() == 5, "five next times in the preview")
    preview = dialog.locator(".nbflow-CronPreview").inner_text()
    assert "07:30" in preview and "Asia/Seoul" in preview, preview
    words = dialog.locator(".nbflow-CronText").inner_text()
    assert words and "30 7" not in words, words  # said in words, not echoed

    # The form comes from the parameters cell: names, types, defaults, the trailing comment.
    dialog.locator('[data-param="title"]').wait_for()
    assert dialog.locator('[data-param="rows"]').input_value() == "[3, 1, 2]"
    assert "heading of the report" in dialog.locator(".nbflow-Params").inner_text()
    dialog.locator('[data-param="title"]').fill("Seoul morning")
    dialog.locator('[data-param="factor"]').fill("3")
    ui.lp.screenshot("dialog")
    dialog.locator(".nbflow-Submit").click()
    dialog.wait_for(state="detached")

    dag_id = f"report_{name}"
    row = ui.wait_row(dag_id, what=f"the sidebar to list the new DAG {dag_id}")
    assert "next" in row["text"]
    files = list((ui.lab.nbflow_home / "dags").glob(f"{dag_id}.py"))
    assert files, sorted(p.name for p in (ui.lab.nbflow_home / "dags").iterdir())
    source = files[0].read_text()
    assert "Seoul morning" in source and "30 7 * * 1-5" in source and "Asia/Seoul" in source, source
    summary = ui.lab.api(f"nbflow/api/dags/{dag_id}")
    assert summary["timezone"] == "Asia/Seoul" and summary["schedule"] == "30 7 * * 1-5"
    ui.page.wait_for_timeout(300)


def test_failed_run_raises_a_notification(ui: NbflowUI) -> None:
    from .conftest import api_json

    dag_id = f"lab_fail_{_uid()}"
    _dag_file(ui.lab, dag_id, f"""\
        from nbflow import DAG, task

        with DAG("{dag_id}", schedule=None) as dag:
            @task
            def boom():
                raise ValueError("the numbers do not add up")

            boom()
        """)
    ui.open_lab()
    ui.open_sidebar()
    ui.wait_row(dag_id)
    ui.page.wait_for_timeout(1500)  # the page has read where the event feed stands
    started = time.monotonic()
    api_json(ui.lab, f"nbflow/api/dags/{dag_id}/runs", "POST", {"conf": {}})
    ui.lp.wait_for(lambda: any(dag_id in t and "failed" in t for t in ui.toasts()),
                   "a Lab notification that the run failed", timeout=60, details=lambda: str(ui.toasts()))
    print(f"\n[notification] {time.monotonic() - started:.1f} s after the trigger")
    ui.page.wait_for_timeout(800)  # the toast slides in
    ui.lp.screenshot("notification")
    row = ui.wait_row(dag_id, lambda r: r["badgeState"] == "failed", "the sidebar badge to turn red")
    assert rgb(row["badgeColour"]) == rgb(STATE_STYLES["failed"]["background"])
    # The notification's action opens the run in the DAG view, with the task red.
    ui.page.locator(".Toastify__toast", has_text=dag_id).locator("button", has_text="Show run").click()
    graph = ui.wait_graph(dag_id, lambda g: g["nodes"] and g["nodes"][0]["state"] == "failed", "the failed task in the graph")
    _assert_colours(graph["nodes"], "failed")
    ui.click_task(dag_id, "boom")
    ui.lp.wait_for(lambda: "the numbers do not add up" in ui.details_text(dag_id), "the error in the task details")


def test_graph_of_5000_tasks(ui: NbflowUI) -> None:
    dag_id = f"lab_big_{_uid()}"
    layers, width = 50, 100
    _dag_file(ui.lab, dag_id, f"""\
        from nbflow import DAG
        from nbflow.operators import EmptyOperator

        with DAG("{dag_id}", schedule=None) as dag:
            previous = None
            for layer in range({layers}):
                current = [EmptyOperator(task_id=f"l{{layer:02d}}_t{{i:03d}}") for i in range({width})]
                if previous:
                    for i, op in enumerate(current):
                        previous[i] >> op
                        if i % 10 == 0:
                            previous[(i + 1) % {width}] >> op
                previous = current
        """)
    ui.open_lab()
    ui.open_sidebar()
    ui.wait_row(dag_id, timeout=60)
    started = time.monotonic()
    ui.page.evaluate("(dagId) => window.jupyterapp.commands.execute('nbflow:open-dag', {dagId})", dag_id)
    graph = ui.wait_graph(dag_id, lambda g: len(g["nodes"]) > 0, "the graph", timeout=60)
    elapsed = time.monotonic() - started
    # folded as in a notebook, to a page's worth of nodes (5,000 dots would be a smear)
    from nbflow.jupyter.server.dags import LAB_ELEMENTS

    assert len(graph["nodes"]) + graph["edges"] <= LAB_ELEMENTS
    _assert_colours(graph["nodes"][:50], "no_status")
    ui.page.wait_for_timeout(800)
    ui.lp.screenshot("opened")  # a drawing far taller than wide opens at the top, readable
    # Panning and zooming a graph this size stays fluent: 30 viewport changes, one per frame.
    frame_ms = ui.page.evaluate(
        """async (dagId) => {
            const cy = document.querySelector('#nbflow-dag-' + dagId + ' .nbflow-Graph-canvas')._cyreg.cy;
            const frame = () => new Promise(resolve => requestAnimationFrame(resolve));
            await frame();
            const t0 = performance.now();
            for (let i = 0; i < 30; i++) {
                cy.panBy({x: 3, y: -12});
                cy.zoom({level: cy.zoom() * (i < 15 ? 0.97 : 1.03), renderedPosition: {x: 300, y: 300}});
                await frame();
            }
            return (performance.now() - t0) / 30;
        }""",
        dag_id,
    )
    print(f"\n[5,000 tasks] the DAG view showed {len(graph['nodes'])} nodes and {graph['edges']} edges "
          f"{elapsed:.2f} s after the command (cytoscape {graph['drawMs']:.0f} ms); pan/zoom {frame_ms:.0f} ms a frame")
    assert frame_ms < 250
    assert elapsed < 30
    ui.page.click(f"#nbflow-dag-{dag_id} .nbflow-FitAll")
    visible = ui.page.evaluate(
        """(dagId) => {
            const cy = document.querySelector('#nbflow-dag-' + dagId + ' .nbflow-Graph-canvas')._cyreg.cy;
            const e = cy.extent();
            return cy.nodes().filter(n => {
                const p = n.position();
                return p.x >= e.x1 && p.x <= e.x2 && p.y >= e.y1 && p.y <= e.y2;
            }).length;
        }""",
        dag_id,
    )
    assert visible == ui.page.evaluate(
        "(dagId) => document.querySelector('#nbflow-dag-' + dagId + ' .nbflow-Graph-canvas')._cyreg.cy.nodes().length",
        dag_id)  # "Fit all" shows every node
    ui.page.wait_for_timeout(800)


def _fan_out_dag(lab: Lab, dag_id: str) -> None:
    """The 2,002-task fan-out: start -> 20 groups of 100 look-alike tasks -> end."""
    _dag_file(lab, dag_id, "from nbflow import DAG, TaskGroup\nfrom nbflow.operators import EmptyOperator\n\n"
              + fan_source(dag_id))


#: What the user sees of each node of a DAG view's graph: its label as cytoscape renders it (after
#: wrapping or cutting), whether it is in the view, and how big its label is on screen.
_SEEN_JS = """
(dagId) => {
    const canvas = document.querySelector('#nbflow-dag-' + dagId + ' .nbflow-Graph-canvas');
    const cy = canvas && canvas._cyreg && canvas._cyreg.cy;
    if (!cy || cy.destroyed()) return null;
    cy.nodes().forEach(n => n.boundingBox({includeLabels: true}));  // makes cytoscape wrap the labels
    const e = cy.extent();
    return {
        zoom: cy.zoom(), opened: canvas.dataset.opened || '', drawMs: Number(canvas.dataset.renderMs || 'NaN'),
        edges: cy.edges().length,
        nodes: cy.nodes().map(n => {
            const r = n._private.rscratch;
            const p = n.position();
            const font = n.pstyle('font-size').pfValue;
            return {
                id: n.id(), label: n.data('label'), shown: n.pstyle('label').strValue, folded: !!n.data('is_folded'), group: !!n.data('is_group'),
                state: n.data('state'), parent: n.data('parent') || null,
                drawn: r.labelWrapCachedText !== undefined ? String(r.labelWrapCachedText) : null,
                x: p.x, y: p.y,
                inView: p.x >= e.x1 && p.x <= e.x2 && p.y >= e.y1 && p.y <= e.y2,
                screenFont: font * cy.zoom(),
                labelShown: font * cy.zoom() >= n.pstyle('min-zoomed-font-size').pfValue,
                color: n.pstyle('color').strValue,
            };
        }),
    };
}
"""


def _seen(ui: NbflowUI, dag_id: str) -> dict[str, Any] | None:
    return ui.page.evaluate(_SEEN_JS, dag_id)


def _uncut(node: dict[str, Any]) -> bool:
    """The label cytoscape draws holds the whole label (wrapped on lines, never cut with an ellipsis)."""
    # (cytoscape marks where a word may break with zero-width spaces)
    drawn = (node["drawn"] or "").replace("\n", "").replace(" ", "").replace("\u200b", "")
    return drawn == node["shown"].replace(" ", "")


def _click_node(ui: NbflowUI, dag_id: str, node_id: str) -> None:
    point = ui.page.evaluate(
        """([dagId, nodeId]) => {
            const canvas = document.querySelector('#nbflow-dag-' + dagId + ' .nbflow-Graph-canvas');
            const node = canvas._cyreg.cy.getElementById(nodeId);
            const rect = canvas.getBoundingClientRect();
            const p = node.renderedPosition();
            return {x: rect.left + p.x, y: rect.top + p.y};
        }""",
        [dag_id, node_id],
    )
    ui.page.mouse.click(point["x"], point["y"])


def test_a_2000_task_dag_view_draws_folded_readable_nodes_that_open_on_a_click(ui: NbflowUI) -> None:
    from .conftest import api_json

    dag_id = f"lab_fan_{_uid()}"
    _fan_out_dag(ui.lab, dag_id)
    ui.open_lab()
    ui.open_sidebar()
    ui.wait_row(dag_id, timeout=60)
    started = time.monotonic()
    ui.page.evaluate("(dagId) => window.jupyterapp.commands.execute('nbflow:open-dag', {dagId})", dag_id)
    ui.wait_graph(dag_id, lambda g: len(g["nodes"]) > 0, "the graph", timeout=60)
    elapsed = time.monotonic() - started
    draw_ms = _seen(ui, dag_id)["drawMs"]
    run = api_json(ui.lab, f"nbflow/api/dags/{dag_id}/runs", "POST", {"conf": {}}, timeout=60)["run"]
    # 2,002 tasks arrive as 22 nodes: start, end and the 20 groups folded, each with its count
    view = _seen(ui, dag_id)
    ids = {n["id"] for n in view["nodes"]}
    assert ids == {"start", "end", *(f"group:partition_{g:02d}" for g in range(20))}, ids
    assert view["edges"] == 40
    folded = [n for n in view["nodes"] if n["folded"]]
    assert len(folded) == 20 and all(n["label"].startswith(n["id"].removeprefix("group:") + " ×100") for n in folded)
    # every label drawn whole, big enough to read, and every node in the view
    assert all(_uncut(n) for n in view["nodes"]), [(n["label"], n["drawn"]) for n in view["nodes"] if not _uncut(n)]
    assert all(n["inView"] and n["labelShown"] and n["screenFont"] >= 9 for n in view["nodes"]), view["zoom"]
    # the run goes to success: each folded node takes its tasks' state and counts them
    ui.wait_graph(dag_id, lambda g: {n["state"] for n in g["nodes"]} == {"success"}, "every node green", timeout=120)
    view = _seen(ui, dag_id)
    assert {n["label"] for n in view["nodes"] if n["folded"]} == {f"partition_{g:02d} ×100 (100✓)" for g in range(20)}
    assert all(_uncut(n) for n in view["nodes"]), [(n["label"], n["drawn"]) for n in view["nodes"] if not _uncut(n)]
    ui.lp.screenshot("folded")
    print(f"\n[2,002 tasks] the DAG view showed {len(view['nodes'])} nodes and {view['edges']} edges "
          f"{elapsed:.2f} s after the command (cytoscape {draw_ms:.0f} ms), zoom {view['zoom']:.2f}")

    # a click on a folded group opens it in place: its 100 tasks in ten readable parts
    before = {n["id"]: (n["x"], n["y"]) for n in view["nodes"]}
    _click_node(ui, dag_id, "group:partition_07")
    ui.lp.wait_for(lambda: (_seen(ui, dag_id) or {}).get("opened") == "group:partition_07", "partition_07 to open",
                   timeout=30, details=lambda: str((_seen(ui, dag_id) or {}).get("opened")))
    view = _seen(ui, dag_id)
    parts = [n for n in view["nodes"] if n["parent"] == "group:partition_07"]
    assert [p["label"] for p in parts] == [f"load_0{k}0–0{k}9 ×10 (10✓)" for k in range(10)]
    assert all(_uncut(n) for n in view["nodes"]), [(n["label"], n["drawn"]) for n in view["nodes"] if not _uncut(n)]
    after = {n["id"]: (n["x"], n["y"]) for n in view["nodes"]}
    assert after["start"] == before["start"]
    # what was in sight stays in sight (the groups beside it moved aside, the ones below moved down)
    assert all(n["inView"] for n in view["nodes"] if n["id"] in before), [
        n["id"] for n in view["nodes"] if n["id"] in before and not n["inView"]]
    assert all(n["inView"] for n in view["nodes"] if n["id"] in ("start", "end", *(p["id"] for p in parts)))
    assert {n["state"] for n in view["nodes"] if not n["group"]} == {"success"}
    # the open group's box names it above itself in a dark ink (a state's white would vanish on the page)
    (box,) = [n for n in view["nodes"] if n["id"] == "group:partition_07"]
    assert box["labelShown"] and "partition_07" in (box["drawn"] or box["shown"]), box
    red, green, blue = (int(v) for v in re.findall(r"\d+", box["color"])[:3])
    assert 0.2126 * red + 0.7152 * green + 0.0722 * blue < 128, f"the group's name is drawn in {box['color']}"
    ui.page.wait_for_timeout(300)
    ui.lp.screenshot("opened")
    # and a part opens into its ten tasks; a task's click shows its details
    _click_node(ui, dag_id, parts[4]["id"])
    ui.lp.wait_for(lambda: parts[4]["id"] in (_seen(ui, dag_id) or {}).get("opened", ""), "the part to open", timeout=30)
    view = _seen(ui, dag_id)
    assert {f"partition_07.load_04{i}" for i in range(10)} <= {n["id"] for n in view["nodes"]}
    ui.click_task(dag_id, "partition_07.load_042")
    ui.lp.wait_for(lambda: "success" in ui.details_text(dag_id), "the task's details", timeout=15)

    # semantic zoom: zoomed far out, single tasks' labels give way and folded nodes' labels grow
    # in the drawing so that they keep a readable size on screen
    zoom_js = """([dagId, level]) => {
        const cy = document.querySelector('#nbflow-dag-' + dagId + ' .nbflow-Graph-canvas')._cyreg.cy;
        cy.zoom({level, renderedPosition: {x: cy.width() / 2, y: cy.height() / 2}});
    }"""
    ui.page.evaluate(zoom_js, [dag_id, 0.4])
    ui.lp.wait_for(lambda: all(n["screenFont"] >= 9.5 for n in (_seen(ui, dag_id) or {"nodes": [{}]})["nodes"]
                               if n.get("folded")), "folded labels to grow", timeout=10)
    view = _seen(ui, dag_id)
    folded = [n for n in view["nodes"] if n["folded"]]
    assert {n["shown"] for n in folded} >= {f"partition_{g:02d}" for g in range(20) if g != 7}  # names only
    assert all(_uncut(n) for n in folded), [(n["shown"], n["drawn"]) for n in folded if not _uncut(n)]
    assert not any(n["labelShown"] for n in view["nodes"] if not n["folded"] and not n["group"])
    ui.page.wait_for_timeout(600)  # cytoscape redraws on its next frames
    ui.lp.screenshot("zoomed-out")
    ui.page.evaluate(zoom_js, [dag_id, 0.15])  # far out, where no name would read: the shape of the DAG
    ui.lp.wait_for(lambda: all(not n["shown"] for n in _seen(ui, dag_id)["nodes"] if n["folded"]),
                   "folded labels to give way", timeout=10)
    ui.page.wait_for_timeout(600)  # cytoscape redraws on its next frames
    ui.lp.screenshot("far-out")
    # the wheel zooms: five notches in double the zoom
    canvas = ui.page.locator(f"#nbflow-dag-{dag_id} .nbflow-Graph-canvas").bounding_box()
    ui.page.mouse.move(canvas["x"] + canvas["width"] / 2, canvas["y"] + canvas["height"] / 2)
    start_zoom = _seen(ui, dag_id)["zoom"]
    for _ in range(5):
        ui.page.mouse.wheel(0, -100)
        ui.page.wait_for_timeout(50)
    ui.lp.wait_for(lambda: _seen(ui, dag_id)["zoom"] >= 2 * start_zoom, "the wheel to zoom in", timeout=5,
                   details=lambda: f"{start_zoom} -> {_seen(ui, dag_id)['zoom']}")
    ui.page.click(f"#nbflow-dag-{dag_id} .nbflow-FoldAll")
    ui.lp.wait_for(lambda: len((_seen(ui, dag_id) or {"nodes": []})["nodes"]) == 22, "the graph folded again", timeout=30)
    assert run["run_id"]


def test_the_grid_of_2000_tasks_holds_only_the_rows_in_sight_grouped_by_task_group(ui: NbflowUI) -> None:
    from .conftest import api_json

    dag_id = f"lab_rows_{_uid()}"
    _fan_out_dag(ui.lab, dag_id)
    ui.open_lab()
    ui.open_sidebar()
    ui.wait_row(dag_id, timeout=60)
    api_json(ui.lab, f"nbflow/api/dags/{dag_id}/runs", "POST", {"conf": {}}, timeout=60)
    ui.page.evaluate("(dagId) => window.jupyterapp.commands.execute('nbflow:open-dag', {dagId})", dag_id)
    ui.wait_graph(dag_id, lambda g: g["runState"] == "success", "the run to succeed", timeout=120)
    ui.page.click(f'#nbflow-dag-{dag_id} [data-tab="grid"]')
    table = f"#nbflow-dag-{dag_id} .nbflow-Grid-table"
    ui.page.wait_for_selector(table)
    rows_js = """(sel) => {
        const grid = document.querySelector(sel).closest('.nbflow-Grid');
        const rows = Array.from(grid.querySelectorAll('tbody tr.nbflow-Grid-row'));
        const view = grid.getBoundingClientRect();
        return {
            rows: rows.length, total: Number(grid.querySelector('table').dataset.rows),
            names: rows.map(r => r.querySelector('th').innerText.trim()),
            groups: Array.from(grid.querySelectorAll('.nbflow-Grid-groupCell')).map(c => c.dataset.state),
            visible: rows.filter(r => { const b = r.getBoundingClientRect(); return b.bottom > view.top && b.top < view.bottom; }).length,
            scrollHeight: grid.scrollHeight, clientHeight: grid.clientHeight,
        };
    }"""
    seen = ui.page.evaluate(rows_js, table)
    # 2,002 tasks: start, end and one row per group, the groups folded, each cell the group's state
    assert seen["total"] == 22 and seen["rows"] == 22, seen
    assert seen["names"][0] == "start" and seen["names"][-1] == "end"
    assert seen["names"][1].startswith("▸ partition_00") and "×100" in seen["names"][1]
    assert set(seen["groups"]) == {"success"} and len(seen["groups"]) == 20
    ui.lp.screenshot("grid-folded")
    # unfold every group: 2,022 rows to scroll through, only those in sight (and a few more) in the DOM
    ui.page.evaluate("""async (sel) => {
        // as a person would: scroll down to each group's row (only rows in sight exist) and click it
        const grid = document.querySelector(sel).closest('.nbflow-Grid');
        const frame = () => new Promise(resolve => requestAnimationFrame(() => requestAnimationFrame(resolve)));
        for (let g = 0; g < 20; g++) {
            const name = `partition_${String(g).padStart(2, '0')}`;
            let th = null;
            for (let tries = 0; tries < 200 && !th; tries++) {
                th = grid.querySelector(`th[data-group="${name}"]`);
                if (!th) { grid.scrollTop += grid.clientHeight / 2; await frame(); }
            }
            th.click();
            await frame();
        }
        grid.scrollTop = 0;
        await frame();
    }""", table)
    ui.lp.wait_for(lambda: ui.page.evaluate(rows_js, table)["total"] == 2022, "every group unfolded", timeout=10,
                   details=lambda: str(ui.page.evaluate(rows_js, table)["total"]))
    seen = ui.page.evaluate(rows_js, table)
    assert seen["rows"] < 120 and seen["visible"] >= 10, seen
    assert seen["scrollHeight"] > 2022 * 17, seen  # the scroll bar is the whole grid's
    ui.page.evaluate("(sel) => { const g = document.querySelector(sel).closest('.nbflow-Grid'); g.scrollTop = g.scrollHeight / 2; }", table)
    ui.lp.wait_for(lambda: ui.page.evaluate(rows_js, table)["visible"] >= 10, "the rows in the middle to be drawn",
                   timeout=10, details=lambda: str(ui.page.evaluate(rows_js, table)))
    seen = ui.page.evaluate(rows_js, table)
    assert seen["rows"] < 120 and seen["visible"] >= 10
    assert sum(n.startswith("load_") for n in seen["names"]) > seen["rows"] / 2  # the middle: tasks of a group
    ui.lp.screenshot("grid-scrolled")
    # a click on a task's cell still picks that task
    cell = ui.page.locator(f"#nbflow-dag-{dag_id} .nbflow-Grid-cell").nth(30)
    task = cell.get_attribute("data-task")
    cell.click()
    ui.page.wait_for_selector(f'#nbflow-dag-{dag_id} .nbflow-Details-header h3:text-is("{task}")')


def test_schedule_command_in_file_browser_and_palette(ui: NbflowUI) -> None:
    name = f"lab_menu_{_uid()}"
    _report_notebook(ui.lab, name)
    ui.open_lab()
    ui.page.evaluate("() => window.jupyterapp.shell.activateById('filebrowser')")
    item = ui.page.locator(f'.jp-DirListing-item[data-file-type="notebook"]:has-text("{name}")')
    item.wait_for()
    item.click(button="right")
    entry = ui.page.locator(".lm-Menu-item", has_text="Schedule this notebook…")
    entry.wait_for()
    ui.lp.screenshot("context-menu")
    entry.click()
    dialog = ui.page.locator(".nbflow-ScheduleDialog")
    dialog.wait_for()
    assert dialog.locator('input[name="path"]').input_value() == f"{name}.ipynb"
    dialog.locator('[data-param="title"]').wait_for()
    ui.page.keyboard.press("Escape")
    dialog.wait_for(state="detached")

    ui.page.evaluate("() => window.jupyterapp.commands.execute('apputils:activate-command-palette')")
    ui.page.keyboard.type("Schedule this notebook")
    ui.page.locator(".lm-CommandPalette-item", has_text="Schedule this notebook…").wait_for()
    ui.page.keyboard.press("Escape")
