"""nbflow's JupyterLab extension in a real Lab: the DAGs sidebar, the DAG view (graph, grid, task
details and log), reports, the schedule dialog and failure notifications.

DAG files go into the Lab's ``NBFLOW_HOME/dags``; the extension talks to the server extension's REST
API. Assertions read the page's DOM and the live cytoscape instance (``container._cyreg.cy``), never
pixels. Each test leaves a screenshot under ``tests/browser/screenshots/``.
"""

from __future__ import annotations

import json
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from nbflow.jupyter.graph import STATE_STYLES

from .conftest import Lab, LabPage, rgb

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _dag_file(lab: Lab, name: str, source: str) -> Path:
    folder = lab.nbflow_home / "dags"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


def _uid() -> str:
    return uuid.uuid4().hex[:6]


def _hello_dag(lab: Lab, dag_id: str) -> None:
    """extract -> (double, count) -> report, all Python; runs in well under a second."""
    _dag_file(lab, dag_id, f"""\
        from nbflow import DAG, task

        with DAG("{dag_id}", schedule="0 6 * * *", start_date="2024-01-01", timezone="Europe/Paris",
                 description="four little tasks") as dag:
            @task
            def extract():
                print("extracting three rows")
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
        nodes: cy.nodes('[!is_group]').map(n => ({
            id: n.id(), state: n.data('state'), shape: n.pstyle('shape').value,
            background: n.pstyle('background-color').value,
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
    _hello_dag(ui.lab, dag_id)
    ui.open_lab()
    ui.open_sidebar()
    ui.wait_row(dag_id)
    ui.page.click(f'#nbflow-sidebar li[data-dag-id="{dag_id}"] .nbflow-DagName')
    graph = ui.wait_graph(dag_id, lambda g: len(g["nodes"]) == 4, "a graph of 4 tasks")
    assert graph["edges"] == 4
    _assert_colours(graph["nodes"], "no_status")

    ui.page.click(f"#nbflow-dag-{dag_id} .nbflow-Trigger")
    graph = ui.wait_graph(
        dag_id, lambda g: all(n["state"] == "success" for n in g["nodes"]), "every task to turn green", timeout=60,
    )
    _assert_colours(graph["nodes"], "success")
    assert {n["shape"] for n in graph["nodes"]} == {"round-rectangle"}  # python tasks, as in the notebook widget

    ui.click_task(dag_id, "report")
    ui.lp.wait_for(lambda: "report: 3 rows" in ui.log_text(dag_id), "the task's log to show what it printed")
    details = ui.details_text(dag_id)
    assert "success" in details and "try" in details and "1 of" in details
    assert "3 rows, total 12" in details  # the output preview

    # The grid: one row per task, the run's column all green.
    ui.page.click(f'#nbflow-dag-{dag_id} [data-tab="grid"]')
    ui.page.wait_for_selector(f"#nbflow-dag-{dag_id} .nbflow-Grid-table")
    states = ui.page.eval_on_selector_all(
        f"#nbflow-dag-{dag_id} .nbflow-Grid-cell", "cells => cells.map(c => c.dataset.state)"
    )
    assert states == ["success"] * 4
    ui.page.click(f'#nbflow-dag-{dag_id} [data-tab="graph"]')
    ui.page.wait_for_timeout(300)
