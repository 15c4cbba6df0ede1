"""The DAG graph view in a real JupyterLab and Chromium: how long a DAG takes to appear, how long a
state change takes to show, and that nothing is lost on the way.

    python benchmarks/graph.py            # about a minute on 2 cores
    python benchmarks/graph.py --quick    # without the 10,000-task DAG

It starts its own JupyterLab (the same way the browser tests do: 127.0.0.1, a token, isolated
Jupyter and nbflow folders, Debian's /usr/bin/chromium through Playwright, Jupyter's default rate
limits) and runs one notebook. Per DAG it measures, with both clocks on this machine:

* ``python``: building the folded, laid-out model in the kernel (no widget);
* ``appear``: from the kernel starting the display of the DAG to the browser's cytoscape holding
  every element the model has (read from the live instance, ``container._cyreg.cy``);
* ``500 states``: from the kernel handing 500 task states to the view to the browser showing all of
  them (the folded nodes holding those tasks take the new state);
* ``run``: a real run of the whole DAG (``dag.test(executor="inline")``, three state changes per
  task, each announced to the view), after which every drawn node must show ``success``.

The baseline, measured in the same run, is a DAG of 10 tasks, which ipycytoscape draws whole.
Targets: a 2,000-task and a 10,000-task DAG appear in under 3 s; 500 state changes show in under
0.5 s; no element and no state is missing at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.browser import conftest as lab_tools  # noqa: E402  (the Lab and Chromium helpers of the browser tests)

SETUP = """\
import json, time
from nbflow import DAG, TaskGroup
from nbflow.operators import EmptyOperator
from nbflow.jupyter.graph import GraphModel

def make(tasks, shape):
    if shape == "layered":
        # no groups and no look-alike neighbours: each task has two random parents a stage above
        import random
        rnd = random.Random(7)
        with DAG(f"bench_{tasks}_{shape}", schedule=None, timezone="UTC", max_active_tasks=100_000) as dag:
            previous = []
            for stage in range(tasks // 50):
                current = [EmptyOperator(task_id=f"stage{stage}_job{j}") for j in range(50)]
                for task in current:
                    for parent in rnd.sample(previous, min(2, len(previous))):
                        parent >> task
                previous = current
        return dag
    if tasks <= 10:
        with DAG(f"bench_{tasks}_{shape}", schedule=None, timezone="UTC") as dag:
            steps = [EmptyOperator(task_id=f"step_{i}") for i in range(tasks)]
            for a, b in zip(steps, steps[1:]):
                a >> b
        return dag
    # regions of 250 look-alike shards behind one start task, like a partitioned load
    with DAG(f"bench_{tasks}_{shape}", schedule=None, timezone="UTC", max_active_tasks=100_000) as dag:
        first = EmptyOperator(task_id="first")
        for g in range(tasks // 250):
            with TaskGroup(f"region{g}") as group:
                for i in range(250):
                    EmptyOperator(task_id=f"shard_{i}")
            first >> group
    return dag

marks = {}
"""

DISPLAY = """\
dag_{n} = make({tasks}, "{shape}")
t0 = time.perf_counter()
model_{n} = GraphModel.from_dag(dag_{n})
marks["python_{n}"] = time.perf_counter() - t0
marks["elements_{n}"] = model_{n}.element_count
marks["shown_{n}"] = time.time()
dag_{n}"""

STATES = """\
from ipywidgets.widgets.widget import _instances
from nbflow.jupyter.graph_widget import DagGraph
graph = [w for w in _instances.values() if isinstance(w, DagGraph) and w.dag.dag_id == "bench_{n}"][-1]
graph.stop()  # hold the view on what we show it
changed = [t for t in graph.dag.task_dict if t != "first"][-500:]
marks["nodes_{n}"] = sorted({{graph.model.node_of(t) for t in changed}})
marks["states_{n}"] = time.time()
graph.set_states({{t: "running" for t in changed}})
graph.flush()"""

RUN = """\
graph.follow()
run = dag_{n}.test(executor="inline")
assert run.state == "success"
print(json.dumps(marks))"""

# Waits in the page for the graph under a cell to satisfy a condition; returns Date.now() then.
WAIT_JS = """
async ([path, cell, condition, timeout]) => {
    const test = new Function('cy', 'return (' + condition + ')(cy);');
    const started = Date.now();
    while (Date.now() - started < timeout) {
        const panel = Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.context && w.context.path === path);
        const area = panel && panel.content.widgets[cell] && panel.content.widgets[cell].node;
        const el = area && Array.from(area.querySelectorAll('div')).find(e => e._cyreg && e._cyreg.cy && !e._cyreg.cy.destroyed());
        if (el && test(el._cyreg.cy)) return Date.now();
        await new Promise(r => requestAnimationFrame(r));
    }
    return null;
}
"""


def measure(cases: list[tuple[int, str]]) -> list[dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    base = Path(tempfile.mkdtemp(prefix="nbflow-graph-bench-"))
    process, lab = lab_tools._start(base)
    if not lab_tools._wait_ready(process, lab):
        raise SystemExit(f"JupyterLab did not start:\n{lab.log_tail()}")
    cells = [SETUP]
    layout: dict[str, dict[str, int]] = {}
    for tasks, shape in cases:
        n = f"{tasks}_{shape}"
        layout[n] = {"display": len(cells), "states": len(cells) + 1, "run": len(cells) + 2}
        cells += [DISPLAY.format(n=n, tasks=tasks, shape=shape), STATES.format(n=n), RUN.format(n=n)]
    rows = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(lab_tools.CHROMIUM), headless=True,
                                                 args=lab_tools.CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            view = lab_tools.LabPage(page, lab, "graph-bench")
            path = view.write_notebook(cells)
            view.open_notebook(path)
            view.run_cells(0, 0)
            for tasks, shape in cases:
                n = f"{tasks}_{shape}"
                # the model's element count is known only in the kernel: run the display cell,
                # then wait for the browser to hold that many elements
                view.run_cells(layout[n]["display"], layout[n]["display"])
                marks = view.kernel_json("marks")
                elements = marks[f"elements_{n}"]
                appeared = page.evaluate(WAIT_JS, [path, layout[n]["display"],
                                                   f"cy => cy.elements().length === {elements}", 60_000])
                view.run_cells(layout[n]["states"], layout[n]["states"])
                marks = view.kernel_json("marks")
                ids = json.dumps(marks[f"nodes_{n}"])
                condition = f"cy => {ids}.every(id => cy.getElementById(id).data('state') === 'running')"
                shown = page.evaluate(WAIT_JS, [path, layout[n]["display"], condition, 30_000])
                view.run_cells(layout[n]["run"], layout[n]["run"], timeout=600)
                done = page.evaluate(WAIT_JS, [path, layout[n]["display"],
                                               "cy => cy.nodes().filter(n => !n.data('is_compound'))"
                                               ".every(n => n.data('state') === 'success')", 30_000])
                final = page.evaluate(WAIT_JS, [path, layout[n]["display"],
                                                f"cy => cy.elements().length === {elements}", 5_000])
                rows.append({
                    "tasks": tasks, "shape": shape, "elements": elements, "python": marks[f"python_{n}"],
                    "appear": None if appeared is None else appeared / 1000 - marks[f"shown_{n}"],
                    "states": None if shown is None else shown / 1000 - marks[f"states_{n}"],
                    "all success": done is not None, "elements kept": final is not None,
                })
            browser.close()
    finally:
        lab_tools._stop(process, lab)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 10,000-task DAG")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON too")
    args = parser.parse_args()
    cases = [(10, "chain"), (2000, "regions")]
    if not args.quick:
        cases += [(10000, "regions"), (10000, "layered")]
    rows = measure(cases)

    def secs(value: float | None) -> str:
        return "timeout" if value is None else f"{value:.2f} s"

    print(f"{'DAG':>24} {'drawn':>6} {'python':>8} {'appear':>9} {'500 states':>11} {'run: all success':>17}  target")
    for row in rows:
        big = row["tasks"] > 10
        ok = (row["appear"] is not None and row["appear"] < 3.0 and row["states"] is not None
              and row["states"] < 0.5 and row["all success"] and row["elements kept"])
        target = ("ok" if ok else "MISSED") if big else "(baseline)"
        label = f"{row['tasks']:,} tasks, {row['shape']}"
        print(f"{label:>24} {row['elements']:>6} {secs(row['python']):>8} {secs(row['appear']):>9} "
              f"{secs(row['states']):>11} {'yes' if row['all success'] and row['elements kept'] else 'NO':>17}  {target}")
    print("drawn: nodes and edges handed to ipycytoscape; appear: display started in the kernel -> every "
          "element in the browser; 500 states: set_states in the kernel -> all shown in the browser")
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
