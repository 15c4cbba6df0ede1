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


def test_the_dashboard_switch_next_run_and_dags_of_other_kernels(ui: NbflowUI, monkeypatch: pytest.MonkeyPatch) -> None:
    """``%nbflow dashboard`` in a notebook: the pause control is a switch (on while active), the next
    run is the sidebar's, and a DAG another kernel defined is marked as such instead of a button
    that fails with "no DAG with id"."""
    from nbflow.dag import DAG
    from nbflow.engine.sync import sync_dag
    from nbflow.operators import EmptyOperator
    from nbflow.store import Store

    here, elsewhere = f"board_{_uid()}", f"elsewhere_{_uid()}"
    host = _host_of(ui.lab, monkeypatch)  # the Lab's NBFLOW_HOME, for the other kernel's DAG
    with DAG(elsewhere, schedule="0 6 * * *", start_date="2024-01-01", timezone="UTC") as other:
        EmptyOperator(task_id="load")
    other.fileloc = "interactive"
    with Store.open(host.settings) as store:
        sync_dag(store, other, source_kind="interactive")
    path = ui.lp.write_notebook([
        "%load_ext nbflow",
        f'%%dag {here} --schedule "0 6 * * *" --timezone UTC --start 2024-01-01\n'
        "from nbflow import task\n\n@task\ndef one():\n    return 1\n\none()",
        "%nbflow dashboard",
    ])
    ui.lp.open_notebook(path)
    ui.lp.run_all()
    ui.lp.wait_for(lambda: here in ui.lp.cell_text(2) and elsewhere in ui.lp.cell_text(2), "the dashboard to list both DAGs",
                   timeout=20, details=lambda: ui.lp.cell_text(2))
    board = ui.page.locator(".jp-Cell").nth(2)
    ui.lp.scroll_to_cell(2)
    ui.lp.screenshot("dashboard")
    listed = {d["dag_id"]: d for d in api_json(ui.lab, "nbflow/api/dags")["dags"]}
    assert listed[elsewhere]["next_run"] and listed[here]["next_run"]
    rows = ui.page.evaluate(
        """(cell) => {
            const grid = document.querySelectorAll('.jp-Cell')[cell].querySelector('.widget-gridbox');
            return Array.from(grid.children).map(c => c.innerText.trim());
        }""", 2)
    width = 10
    table = [rows[i:i + width] for i in range(0, len(rows), width)]
    by_dag = {r[1].split("\n")[0]: r for r in table[1:]}
    for dag_id in (here, elsewhere):
        assert by_dag[dag_id][3] not in ("", "-"), by_dag[dag_id]  # the next run, as the sidebar has it
        assert "06:00" in by_dag[dag_id][3], by_dag[dag_id]
    assert "another kernel" in by_dag[elsewhere][1], by_dag[elsewhere]
    assert board.get_by_role("button", name=elsewhere).count() == 0, "no button that cannot open the DAG"
    switch = board.locator(".widget-checkbox").nth(0)
    assert "▶" not in switch.inner_text() and "active" in switch.inner_text()
    box = switch.locator("input[type=checkbox]")
    assert box.is_checked()
    first = table[1][1].split("\n")[0]
    box.click()
    ui.lp.wait_for(lambda: {d["dag_id"]: d for d in api_json(ui.lab, "nbflow/api/dags")["dags"]}[first]["is_paused"],
                   f"{first} to be paused by the switch", timeout=10)
    ui.lp.wait_for(lambda: "paused" in switch.inner_text(), "the switch to read paused", timeout=10)
    ui.lp.screenshot("dashboard-paused")
    box.click()
    ui.lp.wait_for(lambda: not {d["dag_id"]: d for d in api_json(ui.lab, "nbflow/api/dags")["dags"]}[first]["is_paused"],
                   f"{first} to be active again", timeout=10)


@pytest.mark.browser_locale("de-DE")
def test_a_german_browser_reads_schedules_in_german(ui: NbflowUI) -> None:
    """Issue 16, item 12: schedules in words in the reader's language, which in Lab is the
    browser's (the Lab server itself runs in the C locale, English)."""
    dag_id = f"german_{_uid()}"
    _hello_dag(ui.lab, dag_id)  # "0 6 * * *"
    ui.open_lab()
    ui.open_sidebar()
    row = ui.wait_row(dag_id)
    schedule = ui.page.inner_text(f'#nbflow-sidebar li[data-dag-id="{dag_id}"] .nbflow-DagRow-meta')
    assert "Um 06:00" in schedule and "at 06:00" not in schedule, (schedule, row)
    ui.lp.screenshot("german")
