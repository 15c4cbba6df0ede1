"""The public surface: ``nbflow.__all__`` is sorted, complete and importable."""

from __future__ import annotations

import subprocess
import sys

import nbflow
import nbflow.operators

DOCUMENTED = {"DAG", "dag", "task", "chain", "TriggerRule", "TaskGroup", "get_current_context", "DagRun",
              "TaskState", "RunState", "SkipTask"}


def test_all_is_sorted_and_every_name_resolves() -> None:
    for module in (nbflow, nbflow.operators):
        assert module.__all__ == sorted(module.__all__)
        for name in module.__all__:
            assert getattr(module, name) is not None, name


def test_documented_names_are_exported() -> None:
    assert DOCUMENTED <= set(nbflow.__all__)
    assert {"BaseOperator", "PythonOperator", "BashOperator", "EmptyOperator", "BranchPythonOperator",
            "ShortCircuitOperator"} <= set(nbflow.operators.__all__)


def test_importing_nbflow_is_cheap_and_starts_nothing() -> None:
    code = (
        "import sys, threading; import nbflow; from nbflow import dag, task, DAG;"
        "heavy = [m for m in ('sqlalchemy', 'jinja2', 'alembic', 'IPython', 'cloudpickle') if m in sys.modules];"
        "print(heavy, threading.active_count())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[] 1"


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        nbflow.not_a_thing  # noqa: B018
    except AttributeError as exc:
        assert "not_a_thing" in str(exc)
    else:
        raise AssertionError("nbflow.not_a_thing should not exist")
