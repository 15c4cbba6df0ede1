"""The graph under a cell as a data scientist meets it in JupyterLab: buttons that are under the
pointer, a graph that fills its view after a reload, drawings that do not mislead, times in the
browser's zone.

Read back from the page itself: what ``document.elementFromPoint`` finds under a button, the live
cytoscape instance (``container._cyreg.cy``: zoom, rendered boxes, edge paths, computed colours),
the text Lab shows. Each test leaves a screenshot under ``tests/browser/screenshots/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from .conftest import _PANEL_JS, DRAWING_CHECK_JS, Lab, LabPage, etl_source, rgb

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: the browser's zone in these tests: not the kernel's (UTC), so a time in the wrong zone shows
BROWSER_ZONE = "Asia/Tokyo"


@pytest.fixture
def tokyo_page(lab: Lab, browser: Any, request: pytest.FixtureRequest,
               capsys: pytest.CaptureFixture[str]) -> Iterator[LabPage]:
    """A Lab page in a browser whose time zone is Asia/Tokyo; a screenshot is saved at the end."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, timezone_id=BROWSER_ZONE)
    context.set_default_timeout(30_000)
    page = context.new_page()
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    wrapper = LabPage(page, lab, name)
    try:
        yield wrapper
    finally:
        try:
            path = wrapper.screenshot()
            with capsys.disabled():
                print(f"\n[screenshot] {path}")
        finally:
            context.close()


# -- 1 and 11: the report buttons, the log, the inline report --------------------------------------

REPORT_NOTEBOOK_CELLS = [
    "rows = 3  # parameters",
    # a long log: 60 lines wider than any panel, each ending in a marker that must survive wrapping
    'for i in range(60):\n    print(f"line {i:02d} " + "abcdefghij" * 16 + f" END{i:02d}")',
    'print(f"the total is {rows * 7}")',
]


def _report_notebook(lab: Lab, name: str) -> str:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cells = [nbformat.v4.new_code_cell(source) for source in REPORT_NOTEBOOK_CELLS]
    cells[0].metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# Daily numbers"), *cells]
    path = lab.root_dir / name
    nbformat.write(nb, path)
    return str(path)


_BUTTON_JS = """
([cell, selector]) => {
    const area = document.querySelectorAll('.jp-Notebook .jp-Cell')[cell];
    const button = area && area.querySelector(selector);
    if (!button || button.offsetParent === null) return null;
    const r = button.getBoundingClientRect();
    const x = r.left + r.width / 2, y = r.top + r.height / 2;
    const hit = document.elementFromPoint(x, y);
    return {x, y, width: r.width, height: r.height, hit: !!hit && button.contains(hit),
            hitClass: hit ? String(hit.className) : null};
}
"""

_LOG_JS = """
(cell) => {
    const area = document.querySelectorAll('.jp-Notebook .jp-Cell')[cell];
    const pre = area && area.querySelector('pre.nbflow-log');
    const panel = area && area.querySelector('.nbflow-details');
    if (!pre || !panel) return null;
    const p = pre.getBoundingClientRect(), q = panel.getBoundingClientRect();
    const style = getComputedStyle(pre);
    return {preRight: p.right, preLeft: p.left, panelRight: q.right, panelLeft: q.left,
            scrollWidth: pre.scrollWidth, clientWidth: pre.clientWidth, whiteSpace: style.whiteSpace,
            scrollHeight: pre.scrollHeight, clientHeight: pre.clientHeight, text: pre.textContent};
}
"""

_AREA_JS = """
(cell) => {
    const area = document.querySelectorAll('.jp-Notebook .jp-Cell')[cell];
    const box = el => { if (!el) return null; const r = el.getBoundingClientRect();
                        return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width}; };
    const legend = area.querySelector('.nbflow-legend');
    const l = box(legend);
    const hit = l && document.elementFromPoint(l.left + 20, (l.top + l.bottom) / 2);
    return {graph: box(area.querySelector('.nbflow-graph')), details: box(area.querySelector('.nbflow-details')),
            frame: box(area.querySelector('iframe.nbflow-inline')), legend: l,
            legendVisible: !!hit && legend.contains(hit)};
}
"""


def test_report_buttons_are_under_the_pointer_and_the_log_fits_its_panel(lab_page: LabPage) -> None:
    notebook = _report_notebook(lab_page.lab, "daily-numbers.ipynb")
    cells = [
        "from nbflow import DAG\nfrom nbflow.operators import NotebookOperator",
        f"""\
with DAG("browser_report_buttons", schedule=None) as d:
    NotebookOperator(task_id="numbers", notebook={notebook!r}, parameters={{"rows": 6}}, report="html",
                     report_hide_code=True)
run = d.test()
assert run.state == "success", run.task_states""",
        "d",
    ]
    lab_page.run_notebook(cells, timeout=120)
    lab_page.wait_for_cytoscapes(
        lambda found: any(g["cell"] == 2 and g["nodes"] and g["nodes"][0]["state"] == "success" for g in found),
        "the notebook task, green")
    lab_page.click_node(2, "numbers")
    found: list[Any] = [None]

    def button_shown() -> bool:
        found[0] = lab_page.page.evaluate(_BUTTON_JS, [2, ".nbflow-show-report"])
        return bool(found[0]) and bool(lab_page.page.evaluate(_LOG_JS, 2))

    lab_page.wait_for(button_shown, "the show report button and the log", timeout=20, details=lambda: str(found[0]))
    lab_page.scroll_to_cell(2)
    lab_page.page.wait_for_timeout(300)
    button = lab_page.page.evaluate(_BUTTON_JS, [2, ".nbflow-show-report"])
    notebook_button = lab_page.page.evaluate(_BUTTON_JS, [2, ".nbflow-show-notebook"])
    lab_page.screenshot("details")
    # the button under the pointer is the button, for both buttons
    assert button["hit"], f"a click at the centre of 'show report' lands on {button['hitClass']}"
    assert notebook_button and notebook_button["hit"], notebook_button
    # the log scrolls inside a box that fits its panel, and wraps without losing a character
    log = lab_page.page.evaluate(_LOG_JS, 2)
    assert log["preRight"] <= log["panelRight"] + 1 and log["preLeft"] >= log["panelLeft"] - 1, log
    assert log["scrollWidth"] <= log["clientWidth"] + 1, f"the log is wider than its box: {log}"
    assert log["whiteSpace"] in ("pre-wrap", "break-spaces"), log
    assert log["scrollHeight"] > log["clientHeight"], "40 lines of log scroll inside their box"
    assert "abcdefghij" * 16 + " END59" in log["text"]
    lab_page.page.evaluate("""(cell) => document.querySelectorAll('.jp-Notebook .jp-Cell')[cell]
        .querySelector('pre.nbflow-log').scrollIntoView({block: 'nearest'})""", 2)
    lab_page.screenshot("log")
    # the details scrolled down to the log: the buttons stay in view above them
    button = lab_page.page.evaluate(_BUTTON_JS, [2, ".nbflow-show-report"])
    assert button["hit"], f"with the log scrolled into view, 'show report' is covered by {button['hitClass']}"
    # a real click at the button's centre opens the report, under the graph, across the output
    lab_page.page.mouse.click(button["x"], button["y"])
    frame = lab_page.page.frame_locator(".jp-Cell >> nth=2 >> iframe.nbflow-inline")
    frame.locator("text=the total is 42").wait_for(timeout=20_000)
    body = frame.locator("body").inner_text()
    assert "Daily numbers" in body
    # report_hide_code: the outputs without the code that made them
    assert "print(" not in body and "range(60)" not in body, body[:500]
    area = lab_page.page.evaluate(_AREA_JS, 2)
    assert area["frame"]["width"] >= 0.95 * (area["details"]["right"] - area["graph"]["left"]), area
    assert area["frame"]["top"] >= area["legend"]["bottom"] - 1 and area["legendVisible"], area
    lab_page.page.locator(".jp-Cell >> nth=2 >> iframe.nbflow-inline").scroll_into_view_if_needed()
    lab_page.screenshot("report")


# -- 2: a graph that fills its view after a reload ------------------------------------------------

FIT_CELLS = [
    "from nbflow import DAG, task",
    """\
with DAG("browser_fit", schedule=None) as d:
    @task
    def extract():
        return 1

    @task
    def clean(x):
        return x

    @task
    def report(x):
        return x

    report(clean(extract()))
run = d.test()
assert run.state == "success\"""",
    "d",
]

_VIEW_JS = """
(cell) => {
    const area = document.querySelectorAll('.jp-Notebook .jp-Cell')[cell];
    if (!area) return null;
    const container = Array.from(area.querySelectorAll('div'))
        .find(el => el._cyreg && el._cyreg.cy && !el._cyreg.cy.destroyed());
    if (!container) return null;
    const cy = container._cyreg.cy;
    if (!cy.nodes().length) return null;
    const box = cy.elements().renderedBoundingBox();
    const rect = container.getBoundingClientRect();
    const font = parseFloat(cy.nodes()[0].pstyle('font-size').strValue || cy.nodes()[0].pstyle('font-size').value);
    return {width: rect.width, height: rect.height, cyWidth: cy.width(), cyHeight: cy.height(), zoom: cy.zoom(),
            font, renderedFont: font * cy.zoom(), x1: box.x1, y1: box.y1, x2: box.x2, y2: box.y2};
}
"""


def _fills(view: dict[str, float] | None) -> bool:
    """Drawn inside its view and centred in it, filling most of its width or height (or as large as
    the view ever draws it), with labels of 10 px or more."""
    from nbflow.jupyter.cyto import MAX_ZOOM

    if not view or not view["width"] or not view["height"]:
        return False
    inside = view["x1"] >= -1 and view["y1"] >= -1 and view["x2"] <= view["width"] + 1 and view["y2"] <= view["height"] + 1
    centred = (abs((view["x1"] + view["x2"]) / 2 - view["width"] / 2) < view["width"] * 0.05
               and abs((view["y1"] + view["y2"]) / 2 - view["height"] / 2) < view["height"] * 0.05)
    filled = max((view["x2"] - view["x1"]) / view["width"], (view["y2"] - view["y1"]) / view["height"]) >= 0.75
    sized = abs(view["cyWidth"] - view["width"]) < 2 and abs(view["cyHeight"] - view["height"]) < 2
    return (inside and centred and (filled or view["zoom"] >= MAX_ZOOM - 0.01) and sized
            and view["renderedFont"] >= 10)


def test_after_a_reload_the_graph_fills_its_view_with_readable_labels(lab_page: LabPage) -> None:
    path = lab_page.write_notebook(FIT_CELLS)
    lab_page.open_notebook(path)
    lab_page.run_all(timeout=90)
    seen: list[Any] = [None]

    def filled() -> bool:
        seen[0] = lab_page.page.evaluate(_VIEW_JS, 2)
        return _fills(seen[0])

    lab_page.wait_for(filled, "the graph to fill its view", timeout=15, details=lambda: str(seen[0]))
    lab_page.page.evaluate("async () => { await window.jupyterapp.commands.execute('docmanager:save'); }")
    # reload Lab: the page comes back on the same kernel and draws the graph again from its widgets
    lab_page.page.reload(wait_until="domcontentloaded")
    lab_page.page.wait_for_function("() => !!window.jupyterapp", timeout=30_000)
    lab_page.page.evaluate("async () => { await window.jupyterapp.restored; }")
    lab_page.wait_for(lambda: bool(lab_page.page.evaluate(_VIEW_JS, 2)), "the graph to be drawn again", timeout=40)
    lab_page.scroll_to_cell(2)
    lab_page.wait_for(filled, "the graph to fill its view after the reload", timeout=15, details=lambda: str(seen[0]))
    lab_page.screenshot("reloaded")
    # the output area changes size (a narrower Lab): the graph fits again, without pressing "fit"
    lab_page.page.set_viewport_size({"width": 1000, "height": 1000})
    lab_page.wait_for(filled, "the graph to fit its narrower view", timeout=15, details=lambda: str(seen[0]))
    lab_page.screenshot("narrow")
    # the user zooms out (as the wheel or a pinch does; the graph may already be at its largest
    # zoom): a later change of size keeps their zoom
    view = lab_page.page.evaluate(_VIEW_JS, 2)
    lab_page.page.evaluate("""(cell) => {
        const area = document.querySelectorAll('.jp-Notebook .jp-Cell')[cell];
        const cy = Array.from(area.querySelectorAll('div')).find(el => el._cyreg && el._cyreg.cy)._cyreg.cy;
        cy.zoom({level: cy.zoom() * 0.7, renderedPosition: {x: cy.width() / 2, y: cy.height() / 2}});
    }""", 2)
    assert lab_page.page.evaluate(_VIEW_JS, 2)["zoom"] < view["zoom"] * 0.95
    zoomed = lab_page.page.evaluate(_VIEW_JS, 2)["zoom"]
    lab_page.page.set_viewport_size({"width": 1100, "height": 1000})
    lab_page.wait_for(lambda: abs(lab_page.page.evaluate(_VIEW_JS, 2)["cyWidth"]
                                  - lab_page.page.evaluate(_VIEW_JS, 2)["width"]) < 2, "the graph to measure its new size",
                      timeout=15)
    after = lab_page.page.evaluate(_VIEW_JS, 2)
    assert abs(after["zoom"] - zoomed) < 1e-3, ("a new size undid the user's zoom", zoomed, after)
    # in the narrower Lab every toolbar button shows its whole label (the rows wrap instead)
    cut = lab_page.page.evaluate("""(cell) => {
        const area = document.querySelectorAll('.jp-Notebook .jp-Cell')[cell];
        return Array.from(area.querySelectorAll('button')).filter(b => b.offsetParent !== null)
            .filter(b => b.scrollWidth > b.clientWidth + 1).map(b => b.textContent.trim());
    }""", 2)
    assert not cut, f"toolbar labels cut: {cut}"
    lab_page.screenshot("user-zoom-kept")


# -- 8: drawings that do not mislead --------------------------------------------------------------

ETL_CELLS = [
    "import os, threading\nfrom nbflow import DAG, TaskGroup, task\nfrom nbflow.jupyter.widgets import DagGraph",
    'def gate():\n    while not os.path.exists("etl-gate"):\n        threading.Event().wait(0.05)\n\n'
    + etl_source("browser_etl", "gate()"),
    "etl",
    "folded = DagGraph(etl)\nfolded.collapse('group:checks')\nfolded",
    "runner = threading.Thread(target=lambda: etl.test(executor='thread'), daemon=True)\nrunner.start()",
]

_DRAWING_JS = """
(cell) => {
    const area = document.querySelectorAll('.jp-Notebook .jp-Cell')[cell];
    const container = Array.from(area.querySelectorAll('div'))
        .find(el => el._cyreg && el._cyreg.cy && !el._cyreg.cy.destroyed());
    if (!container) return null;
    return (""" + DRAWING_CHECK_JS + """)(container._cyreg.cy);
}
"""


def test_groups_show_their_worst_state_and_edges_never_pass_over_other_nodes(lab_page: LabPage) -> None:
    from nbflow.jupyter.graph import style_for

    (lab_page.lab.root_dir / "etl-gate").unlink(missing_ok=True)
    lab_page.run_notebook(ETL_CELLS)

    def group(found: list[dict[str, Any]]) -> dict[str, Any] | None:
        for graph in found:
            if graph["cell"] == 3:
                return next((n for n in graph["nodes"] if n["id"] == "group:checks"), None)
        return None

    def states(found: list[dict[str, Any]]) -> dict[str, str]:
        graph = next((g for g in found if g["cell"] == 2), None)
        return {n["id"]: n["state"] for n in graph["nodes"]} if graph else {}

    # rows has finished, nulls and dupes wait at their gate: the group is not done, so not green
    found = lab_page.wait_for_cytoscapes(
        lambda f: states(f).get("checks.rows") == "success" and states(f).get("checks.nulls") == "running"
        and group(f) is not None and group(f)["label"].startswith("checks ×3 (1✓"),
        "one task of the group finished, two running", timeout=60)
    shown = group(found)
    assert shown["state"] == "running" and rgb(shown["background"]) == rgb(style_for("running")["background"]), shown
    lab_page.scroll_to_cell(3)
    lab_page.screenshot("group-running")
    # the open drawing: no edge over a node it does not connect, no node in a box it is not in
    drawing = lab_page.page.evaluate(_DRAWING_JS, 2)
    assert drawing["crossings"] == [] and drawing["overlaps"] == [], drawing
    assert drawing["labels"] and all(label["w"] > 0 for label in drawing["labels"]), drawing
    assert "totals_by_region->daily_report" in drawing["bent"], drawing  # it would pass over load_warehouse
    lab_page.scroll_to_cell(2)
    lab_page.screenshot("drawing")
    (lab_page.lab.root_dir / "etl-gate").write_text("go")
    found = lab_page.wait_for_cytoscapes(lambda f: group(f) is not None and group(f)["state"] == "success",
                                         "the group to turn green once all three tasks finished", timeout=30)
    assert rgb(group(found)["background"]) == rgb(style_for("success")["background"])


# -- 9: times in the browser's zone ---------------------------------------------------------------

TIME_CELLS = [
    "from nbflow import DAG, task",
    """\
with DAG("browser_times", schedule=None) as d:
    @task
    def one():
        return 1

    one()
run = d.test()
assert run.state == "success\"""",
    "d",
]

_TIMES_JS = """
(cell) => {
    const area = document.querySelectorAll('.jp-Notebook .jp-Cell')[cell];
    const times = Array.from(area.querySelectorAll('.nbflow-details time.nbflow-time:not([data-format="short"])'))
        .map(t => ({text: t.textContent, title: t.title, datetime: t.getAttribute('datetime')}));
    const run = area.querySelector('.nbflow-details .nbflow-run');
    const select = area.querySelector('.nbflow-runs-box select');
    const option = select && select.options[select.selectedIndex];
    return {times, run: run ? {text: run.textContent, title: run.title} : null,
            option: option ? {text: option.textContent.replace(/\\u00a0/g, ' '), title: option.title} : null};
}
"""


def test_times_in_the_notebook_show_the_browsers_zone(tokyo_page: LabPage) -> None:
    tokyo_page.run_notebook(TIME_CELLS)
    tokyo_page.wait_for_cytoscapes(lambda f: any(g["cell"] == 2 and g["nodes"] for g in f), "the graph")
    run_id = tokyo_page.kernel_json("run.run_id")
    logical = datetime.fromisoformat(tokyo_page.kernel_json("run.logical_date.isoformat()"))
    tokyo = logical.astimezone(timezone(timedelta(hours=9)))
    short = f"{tokyo.day} {tokyo.strftime('%b %H:%M')}"
    tokyo_page.click_node(2, "one")
    seen: list[Any] = [None]

    def localised() -> bool:
        seen[0] = tokyo_page.page.evaluate(_TIMES_JS, 2)
        times = seen[0]["times"]
        return len(times) == 2 and all(BROWSER_ZONE in t["text"] for t in times) and seen[0]["option"] is not None \
            and short in seen[0]["option"]["text"]

    tokyo_page.wait_for(localised, "the details and the run picker in the browser's zone", timeout=20,
                        details=lambda: str(seen[0]))
    shown = seen[0]
    started = next(t for t in shown["times"] if t["datetime"])
    when = datetime.fromisoformat(started["datetime"].replace("Z", "+00:00")).astimezone(timezone(timedelta(hours=9)))
    assert started["text"] == f"{when:%Y-%m-%d %H:%M:%S} GMT+9 (Asia/Tokyo)", started
    assert started["title"].endswith(" UTC") and "Etc/UTC" not in tokyo_page.cell_text(2)
    # the run reads "test · 4 Dec 10:41" in the picker and the details, its id on hover
    assert shown["option"]["text"] == f"test · {short} · success" and run_id in shown["option"]["title"], shown
    assert shown["run"]["text"] == f"test · {short}" and shown["run"]["title"] == run_id, shown
    tokyo_page.scroll_to_cell(2)
    tokyo_page.screenshot("times")


OFFSCREEN_CELLS = [
    "print('\\n'.join(f'row {i}' for i in range(400)))  # a long output: what follows is off-screen",
    *FIT_CELLS,
]

_RUN_QUIETLY_JS = """
async ([path, index]) => {
    // run one cell without selecting it, so the notebook does not scroll to it
    const panel = Array.from(window.jupyterapp.shell.widgets('main'))
        .find(w => w.context && w.context.path === path && w.content);
    const cell = panel.content.widgets[index];
    await cell.constructor.execute(cell, panel.sessionContext);
}
"""


@pytest.fixture
def full_windowing(lab: Lab) -> Iterator[None]:
    """Lab attaches only the cells in view to the page (its "full" windowing mode), as a long
    notebook does; this Lab's default comes back afterwards."""
    from .conftest import api_json

    setting = "lab/api/settings/@jupyterlab/notebook-extension:tracker"
    api_json(lab, setting, method="PUT", body={"raw": '{"windowingMode": "full"}'})
    try:
        yield
    finally:
        api_json(lab, setting, method="PUT", body={"raw": "{}"})


@pytest.mark.usefixtures("full_windowing")
def test_a_graph_drawn_off_screen_fills_its_view_when_shown(lab_page: LabPage) -> None:
    """The cell runs far below the visible part of its notebook, whose tab is behind another one:
    the graph is drawn with no room at all, and must fill its view once its tab and cell are shown."""
    path = lab_page.write_notebook(OFFSCREEN_CELLS)
    lab_page.open_notebook(path)
    lab_page.run_cells(0, 2)
    lab_page.scroll_to_cell(0)
    other = lab_page.write_notebook(["1"], name=f"other-{lab_page.name[:40]}.ipynb")
    # another notebook in front: this one's tab is hidden while the graph is drawn
    lab_page.page.evaluate("async (p) => { await window.jupyterapp.commands.execute('docmanager:open', {path: p}); }",
                           other)
    lab_page.page.evaluate(_RUN_QUIETLY_JS, [path, 3])  # `d`, far below the visible part
    lab_page.wait_for(lambda: lab_page.notebook_state()["cells"][3]["count"] is not None and
                      lab_page.notebook_state()["kernel"] == "idle", "the graph cell to run off-screen")
    lab_page.page.wait_for_timeout(2500)  # the kernel's own refits are over by now
    lab_page.page.evaluate(f"""(path) => window.jupyterapp.shell.activateById(({_PANEL_JS})(path).id)""", path)
    # scrolled to as Lab does it (a cell out of view is not in the page in this windowing mode)
    lab_page.page.evaluate(f"""async ([path, index]) => {{
        const panel = ({_PANEL_JS})(path);
        await panel.content.scrollToItem(index, 'start');
    }}""", [path, 3])
    seen: list[Any] = [None]
    view_js = _VIEW_JS.replace("const area = document.querySelectorAll('.jp-Notebook .jp-Cell')[cell];",
                               f"const area = ({_PANEL_JS})({path!r}).content.widgets[cell].node;")

    def filled() -> bool:
        seen[0] = lab_page.page.evaluate(view_js, 3)
        return _fills(seen[0])

    lab_page.wait_for(filled, "the graph to fill its view once scrolled to", timeout=10, details=lambda: str(seen[0]))
    lab_page.screenshot("scrolled-to")


# -- 11: the try picker -----------------------------------------------------------------------------

TRY_CELLS = [
    "from datetime import timedelta\nfrom nbflow import DAG\nfrom nbflow.operators import PythonOperator",
    """\
calls = [0]

def flaky():
    calls[0] += 1
    print(f"attempt number {calls[0]}")
    if calls[0] < 3:
        raise ValueError(f"not yet ({calls[0]})")
    return 1

with DAG("browser_tries", schedule=None) as d:
    PythonOperator(task_id="flaky", python_callable=flaky, retries=2, retry_delay=timedelta(0))
run = d.test()
assert run.state == "success\"""",
    "d",
]


def test_picking_an_earlier_try_changes_the_header_not_only_the_log(lab_page: LabPage) -> None:
    lab_page.run_notebook(TRY_CELLS)
    lab_page.wait_for_cytoscapes(lambda f: any(g["cell"] == 2 and g["nodes"] for g in f), "the graph")
    lab_page.click_node(2, "flaky")
    picker = lab_page.page.locator(".jp-Cell >> nth=2 >> .nbflow-try-picker select")
    picker.wait_for(timeout=20_000)

    def header() -> str:
        return " ".join(lab_page.page.locator(".jp-Cell >> nth=2 >> .nbflow-details-body").inner_text().split())

    lab_page.wait_for(lambda: "try 3 of 3" in header() and "attempt number 3" in header(), "the newest try", timeout=15,
                      details=header)
    assert "success" in header()
    picker.select_option(label="try 1 · up for retry")
    lab_page.wait_for(lambda: "try 1 of 3" in header(), "the header to follow the picked try", timeout=15,
                      details=header)
    text = header()
    assert "an earlier try" in text and "up for retry" in text and "not yet (1)" in text, text
    assert "attempt number 1" in text and "attempt number 3" not in text, text
    lab_page.scroll_to_cell(2)
    lab_page.screenshot("try-1")
