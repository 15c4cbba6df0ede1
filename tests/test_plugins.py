"""A DAG finds its view (``nbflow.display``) and its engine (``nbflow.engine``) through entry points:
the view falls back to the plain picture when there is none or it fails; a missing engine is an error
that says to reinstall."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import nbflow.plugins as hooks
from nbflow import DAG
from nbflow.operators import EmptyOperator

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def small() -> DAG:
    with DAG("shown_plain", timezone="UTC") as d:
        EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
    return d


def test_the_installed_view_draws_the_dag(nbflow_home: Path) -> None:
    assert hooks._renderers()["dag"].value == "nbflow.jupyter.display:dag_bundle"
    bundle = small()._repr_mimebundle_()
    assert WIDGET_MIME in bundle and "image/svg+xml" in bundle


def test_without_a_view_the_dag_shows_its_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hooks, "_renderers", lambda: {})
    bundle = small()._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"}
    assert "<td>a</td>" in bundle["text/html"] and "<td>b</td>" in bundle["text/html"]


def test_a_failing_view_never_breaks_displaying(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    broken = EntryPoint(name="dag", value="nbflow.no_such_module:draw", group=hooks.GROUP)
    monkeypatch.setattr(hooks, "_renderers", lambda: {"dag": broken})
    bundle = small()._repr_mimebundle_()
    assert "<td>a</td>" in bundle["text/html"]
    assert "nbflow.no_such_module:draw failed" in caplog.text


def test_dag_test_and_backfill_run_through_the_installed_engine(nbflow_home: Path) -> None:
    assert hooks._points(hooks.ENGINE_GROUP)["run"].value == "nbflow.engine.runs:run_dag"
    assert hooks._points(hooks.ENGINE_GROUP)["backfill"].value == "nbflow.engine.runs:backfill"
    run = small().test()
    assert run.state == "success" and run.task_states == {"a": "success", "b": "success"}


def test_a_missing_engine_says_to_reinstall(monkeypatch: pytest.MonkeyPatch) -> None:
    from nbflow.errors import NotInstalledError

    monkeypatch.setattr(hooks, "_points", lambda group: {})
    with pytest.raises(NotInstalledError, match=r"no entry point 'run' in the group 'nbflow.engine'; reinstall nbflow"):
        small().test()
