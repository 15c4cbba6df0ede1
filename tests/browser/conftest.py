"""Fixtures for the browser tests: a real JupyterLab server and headless Chromium.

* ``lab`` (session): ``jupyter lab`` from this interpreter's environment on 127.0.0.1, a free port and
  a random token, with its own ``HOME``, Jupyter config/data/runtime dirs, ``IPYTHONDIR``, root dir
  and ``NBFLOW_HOME`` (kernels inherit them). The environment's ``share/jupyter`` stays on the data
  path, so its prebuilt labextensions (widgets manager, cytoscape) load; the fixture checks that.
  Under pytest-xdist each worker starts its own server.
* ``browser`` (module): Debian's Chromium (``/usr/bin/chromium``) through Playwright's sync API.
  ``scripts/install-chromium.sh`` installs it; no other browser is ever downloaded.
* ``lab_page`` (per test): a fresh browser context and page wrapped in :class:`LabPage`, which
  writes notebooks, opens them in Lab, runs them and reads the live cytoscape graphs on the page.
  A screenshot of the page is saved when the test ends, under ``tests/browser/screenshots/``
  (``NBFLOW_SCREENSHOTS`` overrides the folder), and its path is printed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Lab extensions the graph views need; the server must see them in the environment's share/jupyter.
REQUIRED_LABEXTENSIONS = ("@jupyter-widgets/jupyterlab-manager", "jupyter-cytoscape")
SCREENSHOTS = Path(os.environ.get("NBFLOW_SCREENSHOTS") or Path(__file__).resolve().parent / "screenshots")
STARTUP_TIMEOUT = 60.0
ANSI = re.compile(r"\x1b\[[0-9;]*m")


# -- the JupyterLab server ------------------------------------------------------------------------


@dataclass(frozen=True)
class Lab:
    """A running JupyterLab server."""

    base_url: str
    token: str
    root_dir: Path
    nbflow_home: Path
    log_path: Path

    def url(self, path: str, **query: str) -> str:
        params = "&".join([*(f"{k}={v}" for k, v in query.items()), f"token={self.token}"])
        return f"{self.base_url}/{path.lstrip('/')}?{params}"

    def api(self, path: str, method: str = "GET", timeout: float = 5.0) -> Any:
        request = urllib.request.Request(
            f"{self.base_url}/{path.lstrip('/')}", method=method, data=b"" if method == "POST" else None,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_env(base: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER_", "NBFLOW_", "IPYTHON"))}
    dirs = {
        "HOME": base / "home",
        "JUPYTER_CONFIG_DIR": base / "jupyter-config",
        "JUPYTER_DATA_DIR": base / "jupyter-data",
        "JUPYTER_RUNTIME_DIR": base / "jupyter-runtime",
        "IPYTHONDIR": base / "ipython",
        "NBFLOW_HOME": base / "nbflow-home",
    }
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    env.update({name: str(path) for name, path in dirs.items()})
    # Lab asks once whether to fetch Jupyter news; answer "no" so the toast never covers the page.
    settings = dirs["JUPYTER_CONFIG_DIR"] / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    # The environment's own share/jupyter (labextensions, the python3 kernel) is found through
    # sys.prefix, whatever JUPYTER_DATA_DIR says; its bin goes first so that kernels use it too.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _start(base: Path) -> tuple[subprocess.Popen[bytes], Lab]:
    token = secrets.token_hex(24)
    port = _free_port()
    root = base / "root"
    root.mkdir(exist_ok=True)
    env = _server_env(base)
    lab = Lab(f"http://127.0.0.1:{port}", token, root, Path(env["NBFLOW_HOME"]), base / "server.log")
    command = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--port-retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.terminals_enabled=False",
        "--expose-app-in-browser",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")
    with lab.log_path.open("ab") as log:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process, lab


def _wait_ready(process: subprocess.Popen[bytes], lab: Lab) -> bool:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            lab.api("api/status", timeout=2.0)
            return True
        except (OSError, urllib.error.URLError, ValueError):
            time.sleep(0.2)
    return False


def _stop(process: subprocess.Popen[bytes], lab: Lab) -> None:
    if process.poll() is None:
        try:
            lab.api("api/shutdown", method="POST")
        except (OSError, urllib.error.URLError, ValueError):
            pass
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def _labextensions(lab: Lab) -> set[str]:
    """The federated extensions the Lab page will load, read from its page config."""
    with urllib.request.urlopen(lab.url("lab"), timeout=10) as response:
        html = response.read().decode()
    found = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', html, re.S)
    if not found:
        return set()
    return {ext["name"] for ext in json.loads(found.group(1)).get("federated_extensions", [])}


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A JupyterLab server for this session (this worker, under xdist)."""
    process: subprocess.Popen[bytes] | None = None
    for attempt in range(3):  # the free port can be taken before the server binds it
        process, server = _start(tmp_path_factory.mktemp(f"lab{attempt}"))
        if _wait_ready(process, server):
            break
        _stop(process, server)
    else:
        pytest.fail(f"JupyterLab did not start; last log lines:\n{server.log_tail()}", pytrace=False)
    try:
        missing = set(REQUIRED_LABEXTENSIONS) - _labextensions(server)
        if missing:
            pytest.fail(
                f"JupyterLab does not see the lab extensions {sorted(missing)}; install ipywidgets and "
                f"ipycytoscape into {sys.prefix}", pytrace=False,
            )
        yield server
    finally:
        _stop(process, server)


# -- the browser ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium, driven by Playwright, for one test module: while Playwright's sync
    API is started, its event loop counts as running on this thread, which would break the server
    tests (pytest-jupyter) that a worker runs after the browser tests."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-chromium.sh (./dev.sh test does)", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def lab_page(lab: Lab, browser: Any, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> Iterator[LabPage]:
    """A new browser context and page on ``lab``; a screenshot is saved when the test ends."""
    language = request.node.get_closest_marker("browser_locale")
    context = browser.new_context(viewport={"width": 1400, "height": 1000},
                                  **({"locale": language.args[0]} if language else {}))
    context.set_default_timeout(30_000)
    page = context.new_page()
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    wrapper = LabPage(page, lab, name)
    try:
        yield wrapper
    finally:
        try:
            path = wrapper.screenshot()
            request.node.user_properties.append(("screenshot", str(path)))
            with capsys.disabled():
                print(f"\n[screenshot] {path}")
        finally:
            context.close()


# -- driving Lab ----------------------------------------------------------------------------------

_PANEL_JS = """
(path) => {
    const app = window.jupyterapp;
    if (!app) return null;
    for (const widget of app.shell.widgets('main')) {
        if (widget.context && widget.context.path === path && widget.content && widget.sessionContext) {
            return widget;
        }
    }
    return null;
}
"""

_NOTEBOOK_STATE_JS = f"""
(path) => {{
    const panel = ({_PANEL_JS})(path);
    if (!panel) return {{found: false}};
    const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
    const cells = panel.content.widgets.map((cell, index) => ({{
        index,
        type: cell.model.type,
        count: cell.model.type === 'code' ? cell.model.executionCount : null,
        errors: cell.model.type === 'code'
            ? cell.model.outputs.toJSON().filter(o => o.output_type === 'error')
                .map(o => ({{ename: o.ename, evalue: o.evalue, traceback: (o.traceback || []).join('\\n')}}))
            : [],
    }}));
    return {{found: true, kernel: kernel ? kernel.status : null, cells}};
}}
"""

_CYTOSCAPES_JS = f"""
(path) => {{
    const panel = ({_PANEL_JS})(path);
    if (!panel) return [];
    const cells = panel.content.widgets;
    const found = [];
    for (const el of panel.node.querySelectorAll('div')) {{
        const cy = el._cyreg && el._cyreg.cy;
        if (!cy || cy.destroyed()) continue;
        found.push({{
            index: found.length,
            cell: cells.findIndex(cell => cell.node.contains(el)),
            edges: cy.edges().length,
            nodes: cy.nodes().map(n => ({{
                id: n.id(),
                label: n.data('label') === undefined ? null : n.data('label'),
                state: n.data('state') === undefined ? null : n.data('state'),
                classes: n.classes(),
                background: n.pstyle('background-color').value,
                visible: n.visible(),
            }})),
        }});
    }}
    return found;
}}
"""

_NODE_POINT_JS = f"""
([path, cell, nodeId]) => {{
    const panel = ({_PANEL_JS})(path);
    const area = panel.content.widgets[cell].node;
    const container = Array.from(area.querySelectorAll('div'))
        .find(el => el._cyreg && el._cyreg.cy && !el._cyreg.cy.destroyed());
    if (!container) return null;
    container.scrollIntoView({{block: 'center'}});
    const node = container._cyreg.cy.getElementById(nodeId);
    if (node.empty()) return null;
    const rect = container.getBoundingClientRect();
    const point = node.renderedPosition();
    return {{x: rect.left + point.x, y: rect.top + point.y,
             inside: point.x >= 0 && point.y >= 0 && point.x <= rect.width && point.y <= rect.height}};
}}
"""

_FIT_JS = f"""
([path, cell]) => {{
    const panel = ({_PANEL_JS})(path);
    const area = panel.content.widgets[cell].node;
    const container = Array.from(area.querySelectorAll('div'))
        .find(el => el._cyreg && el._cyreg.cy && !el._cyreg.cy.destroyed());
    if (!container) return null;
    const cy = container._cyreg.cy;
    const rect = container.getBoundingClientRect();
    const box = cy.elements().renderedBoundingBox();
    return {{width: rect.width, height: rect.height, cyWidth: cy.width(), cyHeight: cy.height(),
             x1: box.x1, y1: box.y1, x2: box.x2, y2: box.y2}};
}}
"""


def rgb(colour: str | list[float] | tuple[float, ...]) -> tuple[int, int, int]:
    """``#rrggbb``, ``#rgb``, ``rgb(r, g, b)`` or an ``[r, g, b]`` list as an integer triple."""
    if isinstance(colour, (list, tuple)):
        return tuple(round(float(c)) for c in colour[:3])  # type: ignore[return-value]
    text = colour.strip().lower()
    if text.startswith("#"):
        digits = text[1:]
        if len(digits) == 3:
            digits = "".join(d * 2 for d in digits)
        return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)
    numbers = re.findall(r"[\d.]+", text)
    if text.startswith("rgb") and len(numbers) >= 3:
        return tuple(round(float(n)) for n in numbers[:3])  # type: ignore[return-value]
    raise ValueError(f"not a colour: {colour!r}")


class LabPage:
    """One Playwright page on a Lab server, with the steps the browser tests need."""

    def __init__(self, page: Any, lab: Lab, name: str) -> None:
        self.page = page
        self.lab = lab
        self.name = name
        self.path: str | None = None
        self.console: list[str] = []
        page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda exc: self.console.append(f"pageerror: {exc}"))

    # notebooks

    def write_notebook(self, cells: list[str], name: str | None = None) -> str:
        """Write a notebook of code cells into the server's root dir; return its path there."""
        import nbformat

        notebook = nbformat.v4.new_notebook()
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        notebook.metadata["language_info"] = {"name": "python"}
        notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
        path = name or f"{self.name}-{uuid.uuid4().hex[:8]}.ipynb"
        nbformat.write(notebook, self.lab.root_dir / path)
        return path

    def open_notebook(self, path: str) -> None:
        """Open ``path`` in a workspace of its own and wait until its kernel is idle."""
        self.path = path
        workspace = f"t{uuid.uuid4().hex[:12]}"
        self.page.goto(self.lab.url(f"lab/workspaces/{workspace}/tree/{path}"), wait_until="domcontentloaded")
        self.page.wait_for_function("() => !!window.jupyterapp", timeout=30_000)
        self.page.evaluate("async () => { await window.jupyterapp.restored; }")
        self.wait_for(
            lambda: (state := self.notebook_state())["found"] and state["kernel"] == "idle",
            f"the notebook {path} to open with an idle kernel", timeout=60,
        )

    def run_all(self, timeout: float = 90) -> dict[str, Any]:
        """Run every cell, wait for the kernel to go idle; fail on the first error output."""
        self.page.evaluate(
            f"""async (path) => {{
                const panel = ({_PANEL_JS})(path);
                window.jupyterapp.shell.activateById(panel.id);
                await window.jupyterapp.commands.execute('notebook:run-all-cells');
            }}""",
            self.path,
        )

        def finished() -> bool:
            state = self.notebook_state()
            if any(cell["errors"] for cell in state["cells"]):
                return True
            code = [cell for cell in state["cells"] if cell["type"] == "code"]
            return state["kernel"] == "idle" and all(cell["count"] is not None for cell in code)

        self.wait_for(finished, "every cell to run", timeout=timeout)
        state = self.notebook_state()
        for cell in state["cells"]:
            for error in cell["errors"]:
                self.screenshot("error")
                pytest.fail(
                    f"cell {cell['index']} raised {error['ename']}: {error['evalue']}\n"
                    f"{ANSI.sub('', error['traceback'])}", pytrace=False,
                )
        return state

    def run_cells(self, first: int, last: int, timeout: float = 90) -> None:
        """Run cells ``first`` to ``last`` (indexes, inclusive) one by one; fail on an error output."""
        for index in range(first, last + 1):
            self.page.evaluate(
                f"""async ([path, index]) => {{
                    const panel = ({_PANEL_JS})(path);
                    window.jupyterapp.shell.activateById(panel.id);
                    panel.content.activeCellIndex = index;
                    await window.jupyterapp.commands.execute('notebook:run-cell');
                }}""",
                [self.path, index],
            )

            def ran() -> bool:
                state = self.notebook_state()
                cell = state["cells"][index]
                return bool(cell["errors"]) or (state["kernel"] == "idle" and cell["count"] is not None)

            self.wait_for(ran, f"cell {index} to run", timeout=timeout)
            errors = self.notebook_state()["cells"][index]["errors"]
            if errors:
                pytest.fail(f"cell {index} raised {errors[0]['ename']}: {errors[0]['evalue']}", pytrace=False)

    def kernel_json(self, expression: str) -> Any:
        """The value of ``expression`` in the notebook's kernel, through JSON (outside any cell)."""
        text = self.page.evaluate(
            f"""async ([path, code]) => {{
                const panel = ({_PANEL_JS})(path);
                const kernel = panel.sessionContext.session.kernel;
                let out = '';
                const future = kernel.requestExecute({{code, silent: false, store_history: false}});
                future.onIOPub = msg => {{ if (msg.header.msg_type === 'stream') out += msg.content.text; }};
                await future.done;
                return out;
            }}""",
            [self.path, f"import json as _json; print(_json.dumps({expression}))"],
        )
        return json.loads(text)

    def run_notebook(self, cells: list[str], timeout: float = 90) -> str:
        """Write, open and run a notebook of ``cells``; return its path."""
        path = self.write_notebook(cells)
        self.open_notebook(path)
        self.run_all(timeout=timeout)
        return path

    def notebook_state(self) -> dict[str, Any]:
        return self.page.evaluate(_NOTEBOOK_STATE_JS, self.path)

    # graphs

    def cytoscapes(self) -> list[dict[str, Any]]:
        """The live cytoscape instances in the open notebook, in page order.

        Each is ``{"index", "cell" (index of the cell whose output holds it), "edges" (count),
        "nodes": [{"id", "label", "state", "classes", "background" ([r, g, b]), "visible"}]}``.
        """
        return self.page.evaluate(_CYTOSCAPES_JS, self.path)

    def wait_for_cytoscapes(
        self, check: Callable[[list[dict[str, Any]]], bool], what: str, timeout: float = 30,
    ) -> list[dict[str, Any]]:
        """Poll :meth:`cytoscapes` until ``check`` accepts them; return them."""
        seen: list[list[dict[str, Any]]] = [[]]

        def ready() -> bool:
            seen[0] = self.cytoscapes()
            return bool(check(seen[0]))

        self.wait_for(ready, what, timeout=timeout, details=lambda: f"cytoscape instances: {seen[0]}")
        return seen[0]

    def node_point(self, cell: int, node_id: str) -> dict[str, Any]:
        """Where node ``node_id`` of the graph under cell ``cell`` is on the page, scrolled into view."""
        found: list[Any] = [None]

        def inside() -> bool:  # the graph is fitted to its view within a few seconds of showing
            found[0] = self.page.evaluate(_NODE_POINT_JS, [self.path, cell, node_id])
            assert found[0] is not None, f"no node {node_id!r} in a graph under cell {cell}"
            return bool(found[0]["inside"])

        self.wait_for(inside, f"node {node_id!r} to be inside its graph's view", timeout=10,
                      details=lambda: str(found[0]))
        # The view fits itself again during its first seconds: click once it has stopped moving.
        while True:
            self.page.wait_for_timeout(900)
            again = self.page.evaluate(_NODE_POINT_JS, [self.path, cell, node_id])
            if again == found[0]:
                return again
            found[0] = again

    def click_node(self, cell: int, node_id: str, *, double: bool = False) -> None:
        """Click (or double-click) node ``node_id`` of the graph under cell ``cell`` with the mouse."""
        point = self.node_point(cell, node_id)
        if double:
            self.page.mouse.dblclick(point["x"], point["y"], delay=60)
        else:
            self.page.mouse.click(point["x"], point["y"])

    def graph_fit(self, cell: int) -> dict[str, float] | None:
        """The graph under cell ``cell``: its view's size, cytoscape's idea of it, and where the
        drawn elements are within it (rendered pixels)."""
        return self.page.evaluate(_FIT_JS, [self.path, cell])

    def output_types(self, index: int) -> list[list[str]]:
        """The output types of cell ``index``: its mime types for displays and results."""
        return self.page.evaluate(
            f"""([path, index]) => {{
                const panel = ({_PANEL_JS})(path);
                return panel.content.widgets[index].model.outputs.toJSON()
                    .map(o => o.data ? Object.keys(o.data) : [o.output_type]);
            }}""",
            [self.path, index],
        )

    def scroll_to_cell(self, index: int) -> None:
        self.page.evaluate(
            f"""([path, index]) => {{
                const panel = ({_PANEL_JS})(path);
                panel.content.widgets[index].node.scrollIntoView({{block: 'start'}});
            }}""",
            [self.path, index],
        )

    def cell_text(self, index: int) -> str:
        """The visible text of cell ``index``'s output area (canvas labels excluded)."""
        return self.page.evaluate(
            f"""([path, index]) => {{
                const panel = ({_PANEL_JS})(path);
                const area = panel.content.widgets[index].node.querySelector('.jp-OutputArea');
                return area ? area.innerText : '';
            }}""",
            [self.path, index],
        )

    # plumbing

    def wait_for(
        self, condition: Callable[[], bool], what: str, timeout: float = 30,
        details: Callable[[], str] | None = None,
    ) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if condition():
                return
            if time.monotonic() > deadline:
                shot = self.screenshot("timeout")
                extra = details() if details else ""
                console = "\n".join(self.console[-20:])
                pytest.fail(
                    f"timed out after {timeout:.0f} s waiting for {what} (screenshot {shot})\n{extra}\n"
                    f"browser console (last 20):\n{console}\nserver log:\n{self.lab.log_tail(20)}",
                    pytrace=False,
                )
            self.page.wait_for_timeout(150)

    def screenshot(self, label: str = "") -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.name}{'-' + label if label else ''}.png"
        self.page.screenshot(path=str(path))
        return path


# -- nbflow's own JupyterLab extension ------------------------------------------------------------

#: The name nbflow's lab extension is installed under (share/jupyter/labextensions/<name>).
NBFLOW_LABEXTENSION = "nbflow-labextension"


@pytest.fixture(scope="session")
def nbflow_lab(lab: Lab) -> Lab:
    """The session's Lab, checked to serve nbflow's REST API and to load nbflow's lab extension."""
    try:
        lab.api("nbflow/api/dags", timeout=30)
    except urllib.error.HTTPError as exc:
        pytest.fail(
            f"GET /nbflow/api/dags answered {exc.code}: the nbflow server extension is not enabled in "
            f"this Lab (is {sys.prefix}/etc/jupyter/jupyter_server_config.d/nbflow.json installed?)\n"
            f"{lab.log_tail()}", pytrace=False,
        )
    if NBFLOW_LABEXTENSION not in _labextensions(lab):
        pytest.fail(
            f"JupyterLab does not load {NBFLOW_LABEXTENSION}: build and install it with ./dev.sh setup "
            f"(it must be in {sys.prefix}/share/jupyter/labextensions)", pytrace=False,
        )
    return lab


def api_json(lab: Lab, path: str, method: str = "GET", body: Any = None, timeout: float = 30.0) -> Any:
    """Call Lab's server with a JSON body (``Lab.api`` sends none); return the decoded answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{lab.base_url}/{path.lstrip('/')}", method=method, data=data,
        headers={"Authorization": f"token {lab.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


#: A JavaScript function of a cytoscape instance: what in its drawing misleads a reader. Each edge
#: that passes over a node it does not connect ("crossings", also over an open group's name), each
#: node drawn in a group box it is not in ("overlaps"), the width of each group's name ("labels"),
#: and the edges drawn bent ("bent"). The notebook's graph and Lab's DAG view are checked with it.
DRAWING_CHECK_JS = """
(cy) => {
    const plain = {includeLabels: false, includeOverlays: false};
    const leaves = cy.nodes().filter(n => !n.isParent());
    const cross = (p, q, b) => {  // does segment p-q pass through box b? (Liang-Barsky)
        let t0 = 0, t1 = 1; const dx = q.x - p.x, dy = q.y - p.y;
        for (const [e, f] of [[-dx, p.x - b.x1], [dx, b.x2 - p.x], [-dy, p.y - b.y1], [dy, b.y2 - p.y]]) {
            if (e === 0) { if (f < 0) return false; continue; }
            const t = f / e;
            if (e < 0) t0 = Math.max(t0, t); else t1 = Math.min(t1, t);
            if (t0 > t1) return false;
        }
        return true;
    };
    const crossings = [];
    cy.edges().forEach(edge => {
        const points = [edge.sourceEndpoint(), ...(edge.segmentPoints() || []), edge.targetEndpoint()];
        leaves.forEach(n => {
            if (n.same(edge.source()) || n.same(edge.target())) return;
            const b = n.boundingBox(plain);
            for (let i = 0; i + 1 < points.length; i++) {
                if (cross(points[i], points[i + 1], b)) { crossings.push(edge.id() + ' over ' + n.id()); break; }
            }
        });
    });
    const overlaps = [];
    cy.nodes().filter(n => n.isParent()).forEach(box => {
        const b = box.boundingBox(plain);
        leaves.forEach(n => {
            if (n.ancestors().contains(box)) return;
            const c = n.boundingBox(plain);
            if (c.x1 < b.x2 && c.x2 > b.x1 && c.y1 < b.y2 && c.y2 > b.y1) overlaps.push(n.id() + ' in ' + box.id());
        });
    });
    const labels = [];  // an edge over a group's name hides it
    cy.nodes().filter(n => n.isParent()).forEach(box => {
        const b = box.boundingBox({includeNodes: false, includeEdges: false, includeLabels: true, includeOverlays: false});
        labels.push({id: box.id(), w: b.w});
        cy.edges().forEach(edge => {
            const points = [edge.sourceEndpoint(), ...(edge.segmentPoints() || []), edge.targetEndpoint()];
            for (let i = 0; i + 1 < points.length; i++) {
                if (b.w > 0 && cross(points[i], points[i + 1], b)) { crossings.push(edge.id() + ' over the name of ' + box.id()); break; }
            }
        });
    });
    return {crossings, overlaps, labels, edges: cy.edges().length,
            bent: cy.edges().filter(e => e.segmentPoints() && e.segmentPoints().length).map(e => e.id())};
}
"""


def etl_source(dag_id: str, wait: str = "") -> str:
    """A small ETL whose drawing can mislead: ``totals_by_region -> daily_report`` would pass straight
    over ``load_warehouse``, and the group ``checks`` takes one input from ``extract`` and one from
    ``clean``. ``wait`` is a statement that ``nulls`` and ``dupes`` run first (to hold them running)."""
    hold = f"\n                {wait}" if wait else ""
    return textwrap.dedent(f"""\
        with DAG("{dag_id}", schedule=None) as etl:
            @task
            def extract():
                return 1

            @task
            def clean(x):
                return x

            @task
            def totals_by_region(x):
                return x

            @task
            def load_warehouse(x):
                return x

            @task
            def daily_report(a, b):
                return a + b

            @task
            def rows(x):
                return x

            @task
            def nulls(x):{hold}
                return x

            @task
            def dupes(x):{hold}
                return x

            raw = extract()
            cleaned = clean(raw)
            totals = totals_by_region(cleaned)
            daily_report(totals, load_warehouse(totals))
            with TaskGroup("checks"):
                rows(raw), nulls(raw), dupes(cleaned)""")


def fan_source(dag_id: str, name: str = "dag") -> str:
    """The 2,002-task fan-out, bound to ``name``: start -> 20 task groups of 100 look-alike tasks
    (``partition_00.load_000`` ...) -> end. Needs ``DAG``, ``TaskGroup`` and ``EmptyOperator``."""
    return textwrap.dedent(f"""\
        with DAG("{dag_id}", schedule=None) as {name}:
            start, end = EmptyOperator(task_id="start"), EmptyOperator(task_id="end")
            for g in range(20):
                with TaskGroup(f"partition_{{g:02d}}") as group:
                    for i in range(100):
                        EmptyOperator(task_id=f"load_{{i:03d}}")
                start >> group >> end""")
