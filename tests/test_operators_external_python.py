"""ExternalPythonOperator and PythonVirtualenvOperator: the callable runs in a real other
interpreter (the one this test venv was made from, which has no nbflow) and in a real venv."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from nbflow import DAG, task
from nbflow.errors import DagDefinitionError, InvalidOptionError
from nbflow.operators import EmptyOperator, ExternalPythonOperator, PythonVirtualenvOperator

OTHER_PYTHON = os.path.realpath(getattr(sys, "_base_executable", sys.executable))


def _states(run) -> dict[str, str]:
    return {task_id: state.value for task_id, state in run.task_states.items()}


def _logs(home: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in home.rglob("*.log"))


def where_am_i(a, b=1, *, ds=None):
    import importlib.util
    import sys

    print("hello from the other side")
    return {"sum": a + b, "python": sys.executable, "has_nbflow": importlib.util.find_spec("nbflow") is not None,
            "ds": ds}


def explode(message):
    raise ValueError(message)


def test_the_callable_runs_in_the_other_interpreter_with_data_arguments(nbflow_home: Path) -> None:
    hostile = "'); import os; os._exit(3) #\"\"\"\n"
    with DAG("external_runs", timezone="UTC") as d:
        ExternalPythonOperator(task_id="remote", python=OTHER_PYTHON, python_callable=where_am_i,
                               op_args=[40], op_kwargs={"b": 2}) >> EmptyOperator(task_id="after")
        ExternalPythonOperator(task_id="hostile", python=OTHER_PYTHON, python_callable=where_am_i,
                               op_args=[hostile], op_kwargs={"b": "!"})
    run = d.test(logical_date="2024-01-06")
    assert _states(run) == {"remote": "success", "after": "success", "hostile": "success"}
    out = run.outputs["remote"]
    assert out["sum"] == 42 and out["ds"] == "2024-01-06"
    assert os.path.realpath(out["python"]) == OTHER_PYTHON and not out["has_nbflow"]  # not this venv
    assert run.outputs["hostile"]["sum"] == hostile + "!"  # passed as data, never as code
    assert "hello from the other side" in _logs(nbflow_home)


def test_the_decorator_flavour(nbflow_home: Path) -> None:
    with DAG("external_decorated", timezone="UTC") as d:
        @task
        def numbers() -> list[int]:
            return [1, 2, 3]

        @task.external_python(python=OTHER_PYTHON)
        def total(rows):
            import sys

            return [sum(rows), sys.version_info[0]]

        total(numbers())
    run = d.test()
    assert _states(run) == {"numbers": "success", "total": "success"}
    assert run.outputs["total"] == [6, 3]


def test_a_callable_that_raises_fails_the_task_with_its_error(nbflow_home: Path) -> None:
    with DAG("external_raises", timezone="UTC") as d:
        ExternalPythonOperator(task_id="boom", python=OTHER_PYTHON, python_callable=explode,
                               op_args=["no good"]) >> EmptyOperator(task_id="after")
    assert _states(d.test()) == {"boom": "failed", "after": "upstream_failed"}
    logs = _logs(nbflow_home)
    assert "ValueError: no good (raised in" in logs and "in explode" in logs


def test_a_bad_python_path_is_one_clear_error(nbflow_home: Path, tmp_path: Path) -> None:
    missing = str(tmp_path / "no" / "python")
    with DAG("external_bad_path", timezone="UTC") as d:
        ExternalPythonOperator(task_id="nowhere", python=missing, python_callable=where_am_i, op_args=[1])
    assert _states(d.test()) == {"nowhere": "failed"}
    assert f"DAG 'external_bad_path', task 'nowhere': failed: python='{missing}' does not exist" in _logs(nbflow_home)
    with DAG("external_no_python", timezone="UTC"):
        with pytest.raises(InvalidOptionError, match=r"task 'empty': python='' is not allowed"):
            ExternalPythonOperator(task_id="empty", python="", python_callable=where_am_i)


def test_lambdas_closures_and_live_context_are_refused() -> None:
    secret = 3

    def closure():
        return secret

    def wants_ti(ti):
        return ti

    with DAG("external_refused", timezone="UTC"):
        with pytest.raises(DagDefinitionError, match=r"task 'lam': python_callable '.*<lambda>' is a lambda"):
            ExternalPythonOperator(task_id="lam", python=OTHER_PYTHON, python_callable=lambda: 1)
        with pytest.raises(DagDefinitionError, match=r"task 'clo': .* is a closure over secret"):
            ExternalPythonOperator(task_id="clo", python=OTHER_PYTHON, python_callable=closure)
        with pytest.raises(DagDefinitionError, match=r"task 'live': python_callable asks for ti"):
            ExternalPythonOperator(task_id="live", python=OTHER_PYTHON, python_callable=wants_ti)
        with pytest.raises(DagDefinitionError, match=r"task 'builtin': .* is a builtin_function_or_method"):
            ExternalPythonOperator(task_id="builtin", python=OTHER_PYTHON, python_callable=len)


def test_an_unpicklable_argument_fails_with_a_clear_error(nbflow_home: Path) -> None:
    import threading

    with DAG("external_unpicklable", timezone="UTC") as d:
        ExternalPythonOperator(task_id="lock", python=OTHER_PYTHON, python_callable=where_am_i,
                               op_args=[threading.Lock()])
    assert _states(d.test()) == {"lock": "failed"}
    assert "its arguments cannot be pickled" in _logs(nbflow_home)


# -- PythonVirtualenvOperator ------------------------------------------------------------------------


def uses_six(n):
    import six
    import sys

    return {"six": six.__version__, "prefix": sys.prefix, "double": n * 2}


@pytest.fixture(scope="session")
def shared_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One NBFLOW_HOME for the virtualenv tests of this worker, so the venv is made once."""
    return tmp_path_factory.mktemp("venv_home")


@pytest.fixture
def venv_home(shared_home: Path, nbflow_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NBFLOW_HOME", str(shared_home))
    return shared_home


@pytest.mark.slow
def test_virtualenv_installs_the_requirements_and_is_cached(venv_home: Path) -> None:
    with DAG("venv_six", timezone="UTC") as d:
        first = PythonVirtualenvOperator(task_id="first", requirements=["six"], system_site_packages=False,
                                         python_callable=uses_six, op_args=[21])

        @task.virtualenv(requirements=["six"], system_site_packages=False)
        def second(n):
            import six

            return [six.__name__, n]

        first >> second(5).operator
    run = d.test()
    assert _states(run) == {"first": "success", "second": "success"}
    prefix = Path(run.outputs["first"]["prefix"])
    assert prefix.parent == venv_home / "venvs" and prefix.name == first.venv_key()
    assert run.outputs["first"]["double"] == 42 and run.outputs["second"] == ["six", 5]
    made = (prefix / "nbflow-venv.json").stat().st_mtime_ns
    assert _states(d.test()) == {"first": "success", "second": "success"}
    assert (prefix / "nbflow-venv.json").stat().st_mtime_ns == made  # the second run reused it
    assert _logs(venv_home).count("making the virtual environment") == 1


@pytest.mark.slow
def test_virtualenv_without_requirements_and_a_bad_requirement(venv_home: Path) -> None:
    with DAG("venv_plain", timezone="UTC") as d:
        PythonVirtualenvOperator(task_id="plain", python_callable=where_am_i, op_args=[1])
        PythonVirtualenvOperator(task_id="bad", requirements=["nbflow-no-such-package-xyz==0.0.1"],
                                 pip_install_options=["--no-index"], python_callable=where_am_i, op_args=[1])
    run = d.test()
    assert _states(run) == {"plain": "success", "bad": "failed"}
    assert Path(run.outputs["plain"]["python"]).parent.parent.parent == venv_home / "venvs"
    assert "pip install nbflow-no-such-package-xyz==0.0.1 failed" in _logs(venv_home)


def test_virtualenv_options_are_checked() -> None:
    with DAG("venv_bad", timezone="UTC"):
        with pytest.raises(InvalidOptionError, match=r"task 'r': requirements=\[''\] is not allowed"):
            PythonVirtualenvOperator(task_id="r", requirements=[""], python_callable=where_am_i)
        with pytest.raises(InvalidOptionError, match=r"task 'p': pip_install_options=\[1\] is not allowed"):
            PythonVirtualenvOperator(task_id="p", pip_install_options=[1], python_callable=where_am_i)
