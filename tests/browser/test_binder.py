"""``binder/`` as Binder uses it: a fresh environment installed exactly as its files say, every notebook
of the tour executed in it, and JupyterLab started through ``binder/start`` showing the demo DAG in the
nbflow sidebar (Debian's Chromium).

The environment is built from a copy of the checkout (the files a clone would have, with the
uncommitted ones), so building the JupyterLab extension there never rewrites the one the other tests
are loading.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from urllib.parse import quote
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Lab, LabPage, _free_port, _server_env, _stop, _wait_ready

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TOUR = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))


def _clone(into: Path) -> Path:
    """The checkout's files as a clone has them (tracked and new, nothing ignored)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    modules = ROOT / "labextension" / "node_modules"
    if modules.is_dir():  # the extension's build tools, as the registry would give them
        (into / "labextension" / "node_modules").symlink_to(modules)
    return into


def _clean_env(venv: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBFLOW_", "JUPYTER_", "VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def binder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """``(the environment, the clone it was built from)``, set up as Binder does: pip installs
    binder/requirements.txt from the repository's root, then binder/postBuild runs."""
    base = tmp_path_factory.mktemp("binder")
    repo = _clone(base / "repo")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-r", "binder/requirements.txt"], cwd=repo, env=_clean_env(venv), capture_output=True, text=True, timeout=1200)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    built = subprocess.run(["bash", "binder/postBuild"], cwd=repo, env=_clean_env(venv), capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    yield venv, repo


def _run_tour(venv: Path, repo: Path, tmp_path: Path) -> None:
    """Every notebook of the tour, executed in the environment, from beside its report notebooks."""
    work = tmp_path / "notebooks"
    shutil.copytree(repo / "notebooks", work)
    for notebook in TOUR:
        done = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "papermill", notebook.name, f"out-{notebook.name}", "--cwd", str(work),
             "-k", "python3", "--no-progress-bar", "--execution-timeout", "180"],
            cwd=work, env=_clean_env(venv, NBFLOW_HOME=str(tmp_path / f"home-{notebook.stem}")), capture_output=True,
            text=True, timeout=600)
        assert done.returncode == 0, f"{notebook.name}:\n{done.stderr[-4000:]}"


@pytest.mark.timeout(2400)  # a fresh environment, the whole tour and a Lab: minutes, more on a busy machine
def test_binder_builds_runs_the_tour_and_starts_lab_with_the_demo_dag(binder: tuple[Path, Path], browser: Any,
                                                                       tmp_path: Path) -> None:
    """One test, so that one worker builds the environment (a build takes minutes)."""
    venv, repo = binder
    _run_tour(venv, repo, tmp_path)
    env = _server_env(tmp_path)
    env.pop("NBFLOW_HOME")  # binder/start puts it in the home folder
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    port, token = _free_port(), uuid.uuid4().hex
    lab = Lab(f"http://127.0.0.1:{port}", token, repo, Path(env["HOME"]) / "nbflow-home", tmp_path / "server.log")
    command = ["bash", str(repo / "binder" / "start"), "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
               f"--port={port}", "--port-retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={repo}", "--expose-app-in-browser", "--LabApp.news_url=None",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    with lab.log_path.open("ab") as log:
        process = subprocess.Popen(command, cwd=repo, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        assert _wait_ready(process, lab), lab.log_tail()
        assert sorted(p.name for p in (lab.nbflow_home / "dags").iterdir()) == ["demo_pipeline.py", "demo_report.ipynb"]
        page = context.new_page()
        shots = LabPage(page, lab, "test_binder_builds_runs_the_tour_and_starts_lab_with_the_demo_dag")
        page.goto(lab.url("lab/tree/notebooks/01-getting-started.ipynb"), wait_until="domcontentloaded")
        page.wait_for_function("() => !!window.jupyterapp", timeout=60_000)
        page.evaluate("async () => { await window.jupyterapp.restored; }")
        page.click('li.lm-TabBar-tab[data-id="nbflow-sidebar"]')
        row = page.wait_for_selector('#nbflow-sidebar li[data-dag-id="demo_pipeline"]', timeout=60_000)
        assert "demo_pipeline" in row.inner_text()
        # the server runs the scheduler (binder/start says so): a trigger from the sidebar runs. The
        # scheduler also made today's scheduled run when it started: the test follows the triggered
        # run itself, by its id, not whichever run the row shows last.
        runs = "nbflow/api/dags/demo_pipeline/runs"
        before = {run["run_id"] for run in lab.api(runs, timeout=30)["runs"]}
        # a locator, not the row's handle: the sidebar redraws its rows as runs change (the scheduled run
        # the server made on start), and a handle taken before a redraw is no longer in the page
        page.locator('#nbflow-sidebar li[data-dag-id="demo_pipeline"] .nbflow-Trigger').click()
        triggered: list[str] = []

        def made() -> bool:
            triggered[:] = [r["run_id"] for r in lab.api(runs, timeout=30)["runs"] if r["run_id"] not in before]
            return bool(triggered)

        shots.wait_for(made, "the triggered run to be made", timeout=60)
        (run_id,) = triggered
        assert run_id.startswith("manual__"), run_id
        chip = f'#nbflow-sidebar li[data-dag-id="demo_pipeline"] .nbflow-RunChip[data-run-id="{run_id}"]'
        # the run starts a kernel for its report: in a full test run on 2 cores that took over 120 s once.
        # Either end is waited for, so a failed run is told with its errors rather than as a timeout.
        from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

        try:
            page.wait_for_selector(f'{chip}[data-state="success"], {chip}[data-state="failed"]', timeout=300_000)
        except PlaywrightTimeoutError:
            pytest.fail(f"run {run_id} did not end within 300 s:\n{_run_report(lab)}")
        finally:
            shots.screenshot()
        assert page.get_attribute(chip, "data-state") == "success", _run_report(lab)
    finally:
        context.close()
        _stop(process, lab)


def _run_report(lab: Lab) -> str:
    """What the server's store says of the demo's runs, with each task's state and error, and the
    end of the server's log: what a failed wait needs to be understood."""
    lines = []
    try:
        for run in lab.api("nbflow/api/dags/demo_pipeline/runs", timeout=30)["runs"]:
            lines.append(f"run {run['run_id']}: {run['state']}")
            detail = lab.api(f"nbflow/api/dags/demo_pipeline/runs/{quote(run['run_id'], safe='')}", timeout=30)
            for ti in detail.get("task_instances", []):
                lines.append(f"  {ti.get('task_id')}: {ti.get('state')} {ti.get('error') or ''}".rstrip())
    except Exception as exc:  # the report is for a failure message: say why it is short
        lines.append(f"(could not read the runs: {exc})")
    return "\n".join(lines) + "\n" + lab.log_tail(80)
