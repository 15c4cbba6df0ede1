"""The DAGs sidebar as a person meets it: a fresh NBFLOW_HOME, renamed notebooks, the ▶ button.

Uses the steps of :mod:`tests.browser.test_labextension` (``NbflowUI``); each test leaves a screenshot
under ``tests/browser/screenshots/``.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from .conftest import Lab, LabPage, api_json
from .test_labextension import NbflowUI, _hello_dag, _uid

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def ui(nbflow_lab: Lab, lab_page: LabPage) -> NbflowUI:
    return NbflowUI(lab_page)


def _import_errors_shown(ui: NbflowUI) -> str:
    return ui.page.evaluate(
        "() => Array.from(document.querySelectorAll('#nbflow-sidebar .nbflow-ImportError')).map(e => e.innerText).join('\\n')"
    )


def _host_of(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A scheduler host on the Lab's NBFLOW_HOME, as ``%nbflow scheduler start`` or ``nbflow scheduler``
    would run next to it; its DAG loads are stepped by the test."""
    from nbflow.engine.scheduler import Scheduler
    from nbflow.settings import load_settings

    for name in [n for n in __import__("os").environ if n.startswith("NBFLOW_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("NBFLOW_HOME", str(lab.nbflow_home))
    return Scheduler(settings=load_settings(), executor="inline")


def _load(host: Any) -> None:
    from nbflow.store import Store

    host.store = host.store or Store.open(host.settings)
    deadline = time.monotonic() + 30
    while not host._reload_dags():  # DAG files are parsed in other processes: poll with a timeout
        assert time.monotonic() < deadline, "the host did not load dags_folder"
        time.sleep(0.05)


def test_a_fresh_home_shows_no_import_error_once_its_dags_load(ui: NbflowUI, monkeypatch: pytest.MonkeyPatch) -> None:
    """A scheduler that starts before the home has a dags folder (a new user's first day), then a
    DAG file is added: the sidebar lists it, and no import error about the folder is shown, ever."""
    folder = ui.lab.nbflow_home / "dags"
    aside = ui.lab.nbflow_home / f"dags-aside-{_uid()}"
    if folder.exists():  # other tests of this session made it: make the home fresh again for this one
        folder.rename(aside)
    host = _host_of(ui.lab, monkeypatch)
    try:
        _load(host)
        dag_id = f"fresh_{_uid()}"
        _hello_dag(ui.lab, dag_id)
        _load(host)
        ui.open_lab()
        ui.open_sidebar()
        ui.wait_row(dag_id)
        errors: list[dict[str, Any]] = api_json(ui.lab, "nbflow/api/import_errors")["import_errors"]
        assert not [e for e in errors if e["fileloc"] == str(folder.resolve())], errors
        shown = _import_errors_shown(ui)
        ui.lp.screenshot("fresh-home")
        assert "FileNotFoundError" not in shown and "no such file" not in shown, shown
    finally:
        if host.store is not None:
            host.store.close()
        if aside.exists():
            for path in aside.iterdir():
                if not (folder / path.name).exists():
                    path.rename(folder / path.name)
            aside.rmdir()


def test_a_notebook_renamed_in_lab_keeps_its_dag_runnable_from_the_sidebar(ui: NbflowUI) -> None:
    """A %%dag cell run in Untitled.ipynb, the notebook renamed in Lab, then ▶ in the sidebar: the
    run starts from the renamed notebook instead of failing on the old path."""
    dag_id = f"renamed_{_uid()}"
    old = f"Untitled-{_uid()}.ipynb"
    ui.lp.write_notebook([
        "%load_ext nbflow",
        f"%%dag {dag_id} --timezone UTC\nfrom nbflow import task\n\n@task\ndef hello():\n    return 1\n\nhello()",
    ], name=old)
    ui.lp.open_notebook(old)
    ui.lp.run_all()
    new = f"sales-{_uid()}.ipynb"
    ui.page.evaluate("async ([a, b]) => { await window.jupyterapp.serviceManager.contents.rename(a, b); }", [old, new])
    ui.lp.wait_for(lambda: (ui.lab.root_dir / new).exists(), "the notebook to be renamed")
    ui.open_sidebar()
    ui.wait_row(dag_id)
    ui.click_in_row(dag_id, ".nbflow-Trigger")
    seen: list[Any] = []

    def ran() -> bool:
        seen[:] = [ui.row(dag_id), ui.toasts()]
        return bool(seen[0] and seen[0]["badgeState"] == "success") or any("could not" in t for t in seen[1])

    ui.lp.wait_for(ran, "the run to succeed (or the trigger to fail)", timeout=60, details=lambda: str(seen))
    ui.lp.screenshot("renamed-run")
    assert not [t for t in ui.toasts() if "could not" in t], ui.toasts()
    assert ui.row(dag_id)["badgeState"] == "success"
    detail = api_json(ui.lab, f"nbflow/api/dags/{dag_id}")
    assert str(detail.get("fileloc", "")).endswith(new), detail.get("fileloc")
