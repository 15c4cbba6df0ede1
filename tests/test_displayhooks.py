"""A DAG in a notebook finds its view through the ``nbflow.display`` entry point, and falls back to
its plain picture when there is none or the view fails."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import nbflow.displayhooks as hooks
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
