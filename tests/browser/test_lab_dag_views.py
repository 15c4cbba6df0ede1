"""The Lab views of a DAG as a person uses them: its source from the sidebar, the DAG view and the
notebook graph; DAG view tabs back after a reload; the extension's settings (refresh interval,
default view) changing what the views do; times in the browser's zone with runs named
"manual · 4 Dec 02:41"; the try picker moving the task's header; the schedule dialog's wording.

The Lab server runs in UTC; the browser of the times test runs in Europe/Berlin, so a time in the
server's zone could not pass for the browser's. Each test leaves a screenshot under
``tests/browser/screenshots/``.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from .conftest import DRAWING_CHECK_JS, Lab, LabPage, api_json, etl_source
from .test_labextension import NbflowUI, _dag_file, _hello_dag, _uid

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PLUGIN = "nbflow-labextension:plugin"


@pytest.fixture
def ui(nbflow_lab: Lab, lab_page: LabPage) -> NbflowUI:
    return NbflowUI(lab_page)


@pytest.fixture
def berlin_ui(nbflow_lab: Lab, browser: Any, request: pytest.FixtureRequest) -> Iterator[NbflowUI]:
    """A page whose browser lives in Europe/Berlin (the server lives in UTC)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, timezone_id="Europe/Berlin",
                                  locale="en-GB")
    context.set_default_timeout(30_000)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    page = LabPage(context.new_page(), nbflow_lab, name)
    try:
        yield NbflowUI(page)
    finally:
        try:
            print(f"\n[screenshot] {page.screenshot()}")
        finally:
            context.close()


def _settings(lab: Lab, raw: str) -> int:
    """PUT the extension's user settings as Lab's Settings Editor does; the HTTP status."""
    request = urllib.request.Request(
        f"{lab.base_url}/lab/api/settings/{PLUGIN}", method="PUT", data=json.dumps({"raw": raw}).encode(),
        headers={"Authorization": f"token {lab.token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _open_dag_view(ui: NbflowUI, dag_id: str) -> None:
    ui.open_sidebar()
    ui.wait_row(dag_id)
    ui.page.click(f'#nbflow-sidebar li[data-dag-id="{dag_id}"] .nbflow-DagName')
    ui.page.wait_for_selector(f"#nbflow-dag-{dag_id} .nbflow-RunSelect")


_CURRENT_EDITOR_JS = """
() => {
    const widget = window.jupyterapp.shell.currentWidget;
    if (!widget || !widget.context) return null;
    const content = widget.content;
    const found = {path: widget.context.path, label: widget.title.label};
    if (content && content.editor) {
        found.line = content.editor.getCursorPosition().line;
        found.lineText = content.editor.getLine(found.line);
    }
    if (content && content.widgets && typeof content.activeCellIndex === 'number') {
        found.cell = content.activeCellIndex;
        const cell = content.activeCell;
        const box = cell.node.getBoundingClientRect();
        const view = content.node.getBoundingClientRect();
        found.cellText = cell.model.sharedModel.getSource();
        found.cellInView = box.top >= view.top - 1 && box.top < view.bottom;
    }
    return found;
}
"""


# -- 12a: the source of a DAG -------------------------------------------------------------------------


def test_the_sidebar_source_button_opens_the_dag_file_in_the_editor_at_its_line(ui: NbflowUI) -> None:
    dag_id = f"lab_src_{_uid()}"
    # the file lives under the server's root and is linked into dags_folder, so Lab can open it
    real = ui.lab.root_dir / f"{dag_id}.py"
    real.write_text("\n".join([
        "from nbflow import DAG, task",
        "",
        "# the DAG below is the one to show",
        "",
        "",
        "",
        f'with DAG("{dag_id}", schedule=None):',
        "    @task",
        "    def hello():",
        "        return 1",
        "",
        "    hello()",
        "",
    ]))
    (ui.lab.nbflow_home / "dags").mkdir(parents=True, exist_ok=True)
    (ui.lab.nbflow_home / "dags" / f"{dag_id}.py").symlink_to(real)
    ui.open_lab()
    ui.open_sidebar()
    ui.wait_row(dag_id)
    ui.click_in_row(dag_id, ".nbflow-SourceButton")
    seen: list[Any] = [None]

    def opened() -> bool:
        seen[0] = ui.page.evaluate(_CURRENT_EDITOR_JS)
        return bool(seen[0]) and seen[0].get("path") == f"{dag_id}.py" and "line" in seen[0]

    ui.lp.wait_for(opened, "an editor tab with the DAG file", details=lambda: str(seen[0]))
    ui.lp.wait_for(lambda: ui.page.evaluate(_CURRENT_EDITOR_JS).get("line") == 6, "the cursor on line 7",
                   details=lambda: str(ui.page.evaluate(_CURRENT_EDITOR_JS)))
    found = ui.page.evaluate(_CURRENT_EDITOR_JS)
    assert found["lineText"].startswith(f'with DAG("{dag_id}"'), found
    tab = ui.page.locator("li.lm-TabBar-tab.jp-mod-current .lm-TabBar-tabLabel").first.inner_text()
    assert tab == f"{dag_id}.py"
    ui.page.wait_for_timeout(300)


def test_the_dag_view_shows_a_file_outside_the_root_read_only_at_its_line(ui: NbflowUI) -> None:
    dag_id = f"lab_src_out_{_uid()}"
    _hello_dag(ui.lab, dag_id)  # NBFLOW_HOME/dags is outside the server's root
    ui.open_lab()
    _open_dag_view(ui, dag_id)
    ui.page.click(f"#nbflow-dag-{dag_id} .nbflow-SourceButton")
    source = ui.page.locator(".nbflow-Source")
    source.wait_for()
    marked = source.locator(".nbflow-Source-line.jp-mod-selected")
    assert marked.count() == 1
    assert marked.get_attribute("data-line") == "5"
    assert f'with DAG("{dag_id}"' in marked.inner_text()
    assert "read-only" in source.locator(".nbflow-Source-where").inner_text()
    assert "def extract" in source.inner_text()
    ui.page.wait_for_timeout(300)


def test_a_notebook_dag_opens_its_notebook_at_the_dag_cell(ui: NbflowUI) -> None:
    import nbformat

    dag_id = f"lab_src_nb_{_uid()}"
    book = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                             "language": "python"}})
    book.cells = [nbformat.v4.new_code_cell("%load_ext nbflow")] + [
        nbformat.v4.new_markdown_cell(f"Some words, part {i}.\n\n" + "A long paragraph. " * 40) for i in range(8)
    ] + [nbformat.v4.new_code_cell(f"%%dag {dag_id}\nfrom nbflow import task\n\n@task\ndef hello():\n    return 1\n\nhello()")]
    nbformat.write(book, ui.lab.root_dir / f"{dag_id}.ipynb")
    (ui.lab.nbflow_home / "dags").mkdir(parents=True, exist_ok=True)
    (ui.lab.nbflow_home / "dags" / f"{dag_id}.ipynb").symlink_to(ui.lab.root_dir / f"{dag_id}.ipynb")
    ui.open_lab()
    _open_dag_view(ui, dag_id)
    ui.page.click(f"#nbflow-dag-{dag_id} .nbflow-SourceButton")
    seen: list[Any] = [None]

    def at_cell() -> bool:
        seen[0] = ui.page.evaluate(_CURRENT_EDITOR_JS)
        return bool(seen[0]) and seen[0].get("path") == f"{dag_id}.ipynb" and seen[0].get("cell") == 9 \
            and seen[0].get("cellInView")

    ui.lp.wait_for(at_cell, "the notebook scrolled to its %%dag cell", details=lambda: str(seen[0]))
    assert seen[0]["cellText"].startswith(f"%%dag {dag_id}")
    ui.page.wait_for_timeout(300)


def test_the_notebook_graphs_source_button_shows_the_dag_cell(ui: NbflowUI) -> None:
    dag_id = f"nb_src_{_uid()}"
    path = ui.lp.write_notebook([
        "%load_ext nbflow",
        f"%%dag {dag_id}\nfrom nbflow import task\n\n@task\ndef hello():\n    return 1\n\nhello()",
    ])
    ui.lp.open_notebook(path)
    ui.lp.run_all()
    ui.lp.wait_for_cytoscapes(lambda found: len(found) == 1, "the DAG's graph under its cell")
    cell = ui.page.locator(".jp-Cell").nth(1)
    cell.get_by_role("button", name="source").click()
    view = cell.locator(".nbflow-source")
    view.wait_for()
    text = view.inner_text()
    assert f"{path}, cell 2, line 1" in text, text
    assert f"%%dag {dag_id}" in text and "def hello" in text, text
    ui.page.wait_for_timeout(300)


# -- 12b: DAG views come back after a reload -------------------------------------------------------


def test_a_dag_view_tab_is_back_after_a_page_reload(ui: NbflowUI) -> None:
    dag_id = f"lab_restore_{_uid()}"
    _hello_dag(ui.lab, dag_id)
    workspace = f"t{uuid.uuid4().hex[:12]}"
    ui.page.goto(ui.lab.url(f"lab/workspaces/{workspace}"), wait_until="domcontentloaded")
    ui.page.wait_for_function("() => !!window.jupyterapp", timeout=30_000)
    ui.page.evaluate("async () => { await window.jupyterapp.restored; }")
    _open_dag_view(ui, dag_id)
    ui.wait_graph(dag_id, lambda g: len(g["nodes"]) == 4, "the graph of 4 tasks")

    def saved() -> bool:  # Lab saves the layout to the server's workspace shortly after a change
        data = ui.lab.api(f"lab/api/workspaces/{workspace}")
        return f"nbflow-dag:{dag_id}" in json.dumps(data.get("data", {}))

    ui.lp.wait_for(saved, "the workspace to record the DAG view", timeout=30)
    ui.page.reload(wait_until="domcontentloaded")
    ui.page.wait_for_function("() => !!window.jupyterapp", timeout=30_000)
    ui.page.evaluate("async () => { await window.jupyterapp.restored; }")
    graph = ui.wait_graph(dag_id, lambda g: len(g["nodes"]) == 4, "the DAG view back, its graph drawn")
    assert graph["edges"] == 4
    tab = ui.page.locator(f'li.lm-TabBar-tab[data-id="nbflow-dag-{dag_id}"]')
    assert tab.count() == 1 and tab.inner_text().strip() == dag_id
    ui.page.wait_for_timeout(300)


# -- 12c: settings ------------------------------------------------------------------------------------


def test_the_refresh_interval_and_default_view_settings_change_what_the_views_do(ui: NbflowUI) -> None:
    dag_id = f"lab_settings_{_uid()}"
    _hello_dag(ui.lab, dag_id)
    # out of range: refused by the schema, not accepted and ignored
    assert _settings(ui.lab, '{"refreshInterval": 0.2}') == 400
    assert _settings(ui.lab, '{"defaultView": "table"}') == 400
    assert _settings(ui.lab, '{"refreshInterval": 1, "defaultView": "grid"}') == 204
    try:
        asked: list[float] = []
        ui.page.on("request", lambda r: asked.append(time.monotonic())
                   if r.method == "GET" and re.search(r"/nbflow/api/dags(\?|$)", r.url) else None)
        ui.open_lab()
        ui.open_sidebar()
        ui.wait_row(dag_id)
        start = len(asked)
        ui.lp.wait_for(lambda: len(asked) >= start + 5, "five more refreshes of the sidebar", timeout=20)
        gaps = [b - a for a, b in zip(asked[start:], asked[start + 1:])]
        # once a second (the setting), not every 5 s (the default)
        assert all(0.7 < gap < 2.5 for gap in gaps), gaps
        ui.page.click(f'#nbflow-sidebar li[data-dag-id="{dag_id}"] .nbflow-DagName')
        ui.page.wait_for_selector(f"#nbflow-dag-{dag_id} .nbflow-Grid", state="visible")
        assert "jp-mod-active" in (ui.page.get_attribute(f'#nbflow-dag-{dag_id} [data-tab="grid"]', "class") or "")
        assert not ui.page.is_visible(f"#nbflow-dag-{dag_id} .nbflow-Graph-canvas")
        ui.lp.screenshot("grid-by-default")
    finally:
        assert _settings(ui.lab, "{}") == 204


# -- 9: times in the browser's zone, runs by name -------------------------------------------------------


def test_times_are_in_the_browsers_zone_and_runs_are_named_by_type_and_date(berlin_ui: NbflowUI) -> None:
    ui = berlin_ui
    dag_id = f"lab_times_{_uid()}"
    _hello_dag(ui.lab, dag_id)
    run = api_json(ui.lab, f"nbflow/api/dags/{dag_id}/runs", "POST", {"conf": {}})["run"]
    run_id = run["run_id"]
    assert run_id.startswith("manual__")

    def ended() -> bool:
        return ui.lab.api(f"nbflow/api/dags/{dag_id}/runs/{run_id}")["state"] in ("success", "failed")

    ui.lp.wait_for(ended, "the run to end", timeout=60)
    logical = datetime.fromisoformat(ui.lab.api(f"nbflow/api/dags/{dag_id}/runs/{run_id}")["logical_date"])
    berlin = logical.astimezone(ZoneInfo("Europe/Berlin"))
    expected = f"manual · {berlin.day} {berlin.strftime('%b')} {berlin:%H:%M}"
    assert berlin.utcoffset() != logical.utcoffset()

    ui.open_lab()
    ui.open_sidebar()
    ui.wait_row(dag_id, lambda r: r["badgeState"] == "success")
    assert "Europe/Berlin" in ui.page.inner_text("#nbflow-sidebar .nbflow-Sidebar-footer")
    chip = ui.page.get_attribute(f'#nbflow-sidebar li[data-dag-id="{dag_id}"] .nbflow-RunChip', "title") or ""
    assert chip.startswith(expected) and run_id in chip and "UTC" in chip and "Europe/Berlin" in chip, chip

    ui.page.click(f'#nbflow-sidebar li[data-dag-id="{dag_id}"] .nbflow-DagName')
    select = f"#nbflow-dag-{dag_id} .nbflow-RunSelect"
    ui.lp.wait_for(lambda: ui.page.locator(f"{select} option").count() == 2, "the run in the picker")
    option = ui.page.locator(f"{select} option").nth(1)
    assert option.inner_text().startswith(expected), option.inner_text()
    assert "manual__" not in option.inner_text()
    hover = option.get_attribute("title") or ""
    assert run_id in hover and "UTC" in hover and "Europe/Berlin" in hover, hover
    assert "Europe/Berlin" in ui.page.inner_text(f"#nbflow-dag-{dag_id} .nbflow-DagView-controls")
    upcoming = ui.page.get_attribute(f"#nbflow-dag-{dag_id} .nbflow-DagView-next", "title") or ""
    assert "local (Europe/Berlin)" in upcoming and "UTC" in upcoming and "(Europe/Paris)" in upcoming, upcoming

    ui.click_task(dag_id, "report")
    ui.lp.wait_for(lambda: "Times in local time (Europe/Berlin)" in ui.details_text(dag_id),
                   "the details, their zone named", details=lambda: ui.details_text(dag_id))
    run_row = ui.page.locator(f"#nbflow-dag-{dag_id} .nbflow-Facts tr", has_text="run").first.locator("td")
    assert run_row.inner_text() == expected and run_row.get_attribute("title") == run_id
    started = ui.page.locator(f"#nbflow-dag-{dag_id} .nbflow-Facts tr", has_text="started").locator("td")
    assert "UTC" in (started.get_attribute("title") or "")

    ui.page.click(f'#nbflow-dag-{dag_id} [data-tab="grid"]')
    ui.page.wait_for_selector(f"#nbflow-dag-{dag_id} .nbflow-Grid-cell")
    cell = ui.page.get_attribute(f"#nbflow-dag-{dag_id} .nbflow-Grid-cell", "title") or ""
    assert expected in cell and run_id in cell and "UTC" in cell, cell

    # the schedule dialog starts in the browser's zone (the server's is UTC), and a bad cron says
    # what the field takes: a cron expression or a preset, not "a timedelta, or None"
    ui.page.click("#nbflow-sidebar .nbflow-ScheduleButton")
    dialog = ui.page.locator(".nbflow-ScheduleDialog")
    dialog.wait_for()
    ui.lp.wait_for(lambda: dialog.locator('input[name="timezone"]').input_value() != "", "the zone to be filled in")
    assert dialog.locator('input[name="timezone"]').input_value() == "Europe/Berlin"
    dialog.locator('input[name="cron"]').fill("61 * * * *")
    dialog.locator(".nbflow-CronError").wait_for()
    said = dialog.locator(".nbflow-CronError").inner_text()
    assert "minute" in said and "cron expression" in said and "@daily" in said, said
    assert "timedelta" not in said and "None" not in said, said
    ui.lp.screenshot("dialog")
    ui.page.keyboard.press("Escape")


# -- 11: the try picker moves the header -------------------------------------------------------------


def test_picking_an_earlier_try_changes_the_tasks_header(ui: NbflowUI) -> None:
    dag_id = f"lab_tries_{_uid()}"
    marker = ui.lab.nbflow_home / f"{dag_id}.tried"
    _dag_file(ui.lab, dag_id, f"""\
        from datetime import timedelta
        from pathlib import Path

        from nbflow import DAG, task

        with DAG("{dag_id}", schedule=None):
            @task(retries=1, retry_delay=timedelta(seconds=0))
            def flaky():
                marker = Path({str(marker)!r})
                if not marker.exists():
                    marker.write_text("once")
                    raise RuntimeError("the first try fails")
                print("the second try works")
                return "ok"

            flaky()
        """)
    ui.open_lab()
    _open_dag_view(ui, dag_id)
    ui.page.click(f"#nbflow-dag-{dag_id} .nbflow-Trigger")
    ui.wait_graph(dag_id, lambda g: all(n["state"] == "success" for n in g["nodes"]), "the retried task to succeed",
                  timeout=60)
    ui.click_task(dag_id, "flaky")
    header = f"#nbflow-dag-{dag_id} .nbflow-Details-header .nbflow-StateLabel"
    tries = f"#nbflow-dag-{dag_id} .nbflow-TrySelect"
    ui.page.wait_for_selector(tries)

    def try_row() -> str:
        return ui.page.locator(f"#nbflow-dag-{dag_id} .nbflow-Facts tr", has_text="try").first.inner_text()

    assert ui.page.get_attribute(header, "data-state") == "success"
    assert re.search(r"try\s+2 of 2", try_row()), try_row()
    ui.page.select_option(tries, "1")
    # try 1 failed and was retried: its own state, not the task's
    ui.lp.wait_for(lambda: ui.page.get_attribute(header, "data-state") == "up_for_retry",
                   "the header to show try 1 (up for retry)")
    assert re.search(r"try\s+1 of 2", try_row()), try_row()
    ui.lp.wait_for(lambda: "the first try fails" in ui.details_text(dag_id), "try 1's error and log")
    assert not ui.page.is_visible(f"#nbflow-dag-{dag_id} .nbflow-Details-output")  # try 2's output, not try 1's
    ui.lp.screenshot("try-1")
    ui.page.select_option(tries, "2")
    ui.lp.wait_for(lambda: ui.page.get_attribute(header, "data-state") == "success", "the header back on try 2")
    assert re.search(r"try\s+2 of 2", try_row()), try_row()
    ui.page.wait_for_timeout(300)


def test_a_failure_notification_names_the_run_by_type_and_local_date(berlin_ui: NbflowUI) -> None:
    ui = berlin_ui
    dag_id = f"lab_fail_named_{_uid()}"
    _dag_file(ui.lab, dag_id, f"""\
        from nbflow import DAG, task

        with DAG("{dag_id}", schedule=None):
            @task
            def boom():
                raise ValueError("no")

            boom()
        """)
    feeds: list[str] = []
    ui.page.on("response", lambda r: feeds.append(r.url) if "/nbflow/api/events" in r.url else None)
    ui.open_lab()
    ui.open_sidebar()
    ui.wait_row(dag_id)
    ui.lp.wait_for(lambda: bool(feeds), "the page to read where the event feed stands")
    run_id = api_json(ui.lab, f"nbflow/api/dags/{dag_id}/runs", "POST", {"conf": {}})["run"]["run_id"]
    ui.lp.wait_for(lambda: any(dag_id in t for t in ui.toasts()), "a notification of the failed run", timeout=60,
                   details=lambda: str(ui.toasts()))
    logical = datetime.fromisoformat(ui.lab.api(f"nbflow/api/dags/{dag_id}/runs/{run_id}")["logical_date"])
    berlin = logical.astimezone(ZoneInfo("Europe/Berlin"))
    toast = next(t for t in ui.toasts() if dag_id in t)
    assert f"run manual · {berlin.day} {berlin.strftime('%b')} {berlin:%H:%M}" in toast, toast
    assert "manual__" not in toast, toast
    box = ui.page.locator(".Toastify__toast", has_text=dag_id)

    def in_view() -> bool:  # the toast slides in from the right
        rect = box.bounding_box()
        return rect is not None and rect["x"] + rect["width"] <= 1400

    ui.lp.wait_for(in_view, "the notification to have slid in")
    ui.lp.screenshot("toast")


def test_changing_the_refresh_interval_in_the_settings_editor_changes_the_sidebars_pace_at_once(ui: NbflowUI) -> None:
    dag_id = f"lab_live_settings_{_uid()}"
    _hello_dag(ui.lab, dag_id)
    asked: list[float] = []
    ui.page.on("request", lambda r: asked.append(time.monotonic())
               if r.method == "GET" and re.search(r"/nbflow/api/dags(\?|$)", r.url) else None)
    try:
        ui.open_lab()
        ui.open_sidebar()
        ui.wait_row(dag_id)
        ui.page.evaluate("async () => { await window.jupyterapp.commands.execute('settingeditor:open', {query: 'nbflow'}); }")
        field = ui.page.locator('input[id$="nbflow-labextension:plugin_refreshInterval"]')
        field.wait_for()
        assert field.input_value() == "5"
        field.fill("1")
        field.press("Tab")

        def every_second() -> bool:
            gaps = [b - a for a, b in zip(asked[-4:], asked[-3:])]
            return len(gaps) == 3 and all(0.7 < gap < 2.0 for gap in gaps)

        ui.lp.wait_for(every_second, "the sidebar to refresh every second", timeout=30,
                       details=lambda: str([round(b - a, 2) for a, b in zip(asked, asked[1:])]))
        saved = ui.lab.api(f"lab/api/settings/{PLUGIN}")
        assert saved["settings"]["refreshInterval"] == 1

        # out of range: the editor refuses it and the stored setting, and the pace, stay
        field.fill("0.2")
        field.press("Tab")
        ui.page.get_by_text("must be >= 1").first.wait_for()
        ui.lp.screenshot("refused")
        mark = len(asked)
        ui.lp.wait_for(lambda: len(asked) >= mark + 3, "three more refreshes")
        gaps = [b - a for a, b in zip(asked[mark - 1:], asked[mark:])]
        assert all(gap > 0.7 for gap in gaps), gaps
        assert ui.lab.api(f"lab/api/settings/{PLUGIN}")["settings"]["refreshInterval"] == 1
    finally:
        assert _settings(ui.lab, "{}") == 204


def test_edges_bend_round_nodes_they_do_not_connect_as_in_the_notebook(ui: NbflowUI) -> None:
    """Issue 16, item 8, in Lab: totals_by_region -> daily_report would pass straight over
    load_warehouse and read as a dependency on it; the DAG view bends it round, at the points the
    server computes for the notebook's graph too, and no edge passes over a node or a group's name."""
    dag_id = f"lab_etl_{_uid()}"
    _dag_file(ui.lab, dag_id, "from nbflow import DAG, TaskGroup, task\n\n" + etl_source(dag_id))
    ui.open_lab()
    _open_dag_view(ui, dag_id)
    ui.wait_graph(dag_id, lambda g: {"daily_report", "checks.rows"} <= {n["id"] for n in g["nodes"]},
                  "the graph with its group open")
    drawing = ui.page.evaluate(
        "(dagId) => (" + DRAWING_CHECK_JS + ")("
        "document.querySelector('#nbflow-dag-' + dagId + ' .nbflow-Graph-canvas')._cyreg.cy)", dag_id)
    ui.lp.screenshot("etl-drawing")
    assert drawing["crossings"] == [] and drawing["overlaps"] == [], drawing
    assert "totals_by_region->daily_report" in drawing["bent"], drawing


def test_a_double_click_on_an_open_groups_box_folds_that_group_alone(ui: NbflowUI) -> None:
    """Issue 16, item 7: in Lab, a group opened (or open from the start) can be closed on its own,
    as in the notebook, without "Fold all"."""
    dag_id = f"lab_close_{_uid()}"
    _dag_file(ui.lab, dag_id, "from nbflow import DAG, TaskGroup, task\n\n" + etl_source(dag_id))
    ui.open_lab()
    _open_dag_view(ui, dag_id)
    ui.wait_graph(dag_id, lambda g: "checks.rows" in {n["id"] for n in g["nodes"]}, "the group open")
    # inside the box's padding, left of its first node: on the box itself, not on a task
    point = ui.page.evaluate("""(dagId) => {
        const canvas = document.querySelector('#nbflow-dag-' + dagId + ' .nbflow-Graph-canvas');
        const box = canvas._cyreg.cy.getElementById('group:checks').renderedBoundingBox({includeLabels: false});
        const rect = canvas.getBoundingClientRect();
        return {x: rect.left + box.x1 + 4, y: rect.top + (box.y1 + box.y2) / 2};
    }""", dag_id)
    ui.page.mouse.dblclick(point["x"], point["y"])
    graph = ui.wait_graph(dag_id, lambda g: "group:checks" in {n["id"] for n in g["nodes"]},
                          "the group folded into one node")
    ids = {n["id"] for n in graph["nodes"]}
    assert not ids & {"checks.rows", "checks.nulls", "checks.dupes"}, ids
    assert {"extract", "clean", "totals_by_region", "load_warehouse", "daily_report"} <= ids  # the rest stays
    assert "closed checks" in ui.page.inner_text(f"#nbflow-dag-{dag_id}")
    ui.lp.screenshot("closed")
    # and a click opens it again
    point = ui.page.evaluate("""(dagId) => {
        const canvas = document.querySelector('#nbflow-dag-' + dagId + ' .nbflow-Graph-canvas');
        const p = canvas._cyreg.cy.getElementById('group:checks').renderedPosition();
        const rect = canvas.getBoundingClientRect();
        return {x: rect.left + p.x, y: rect.top + p.y};
    }""", dag_id)
    ui.page.mouse.click(point["x"], point["y"])
    ui.wait_graph(dag_id, lambda g: "checks.rows" in {n["id"] for n in g["nodes"]}, "the group open again")
