"""``Param``: typed DAG parameters with defaults and descriptions, checked with JSON Schema when a run
is triggered (no run is made for a bad value), overridden by the run's conf, seen by tasks and
templates in the worker, and refused at definition when they could never be satisfied."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from nbflow import DAG, Param, task
from nbflow.errors import InvalidConfError, InvalidOptionError
from nbflow.operators import BashOperator
from nbflow.params import run_params

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _report_dag(dag_id: str = "report", **dag_args: Any) -> DAG:
    params = {
        "region": Param("eu", description="where the sales are", enum=["eu", "us"]),
        "days": Param(7, type="integer", minimum=1, maximum=31),
        "plain": "kept",
    }
    with DAG(dag_id, timezone="UTC", start_date=T0, params=params, **dag_args) as dag:
        @task
        def seen(params: dict[str, Any]) -> dict[str, Any]:
            return dict(params)

        seen()
        BashOperator(task_id="say", bash_command="echo {{ params.region }}-{{ params.days }}")
    return dag


@pytest.mark.parametrize("executor", ["inline", "process"])
def test_tasks_and_templates_see_the_defaults_then_the_conf(nbflow_home: Path, executor: str) -> None:
    dag = _report_dag()
    run = dag.test(executor=executor)
    assert run.outputs["seen"] == {"region": "eu", "days": 7, "plain": "kept"}
    assert run.outputs["say"] == "eu-7"
    run = dag.test(conf={"region": "us", "days": 30, "plain": "given"}, executor=executor)
    assert run.outputs["seen"] == {"region": "us", "days": 30, "plain": "given"}
    assert run.outputs["say"] == "us-30"


@pytest.mark.parametrize(("conf", "words"), [
    ({"region": "mars"}, "param 'region' the value 'mars', which is not allowed: 'mars' is not one of ['eu', 'us']"),
    ({"days": 0}, "param 'days' the value 0, which is not allowed: 0 is less than the minimum of 1"),
    ({"days": "7"}, "param 'days' the value '7', which is not allowed: '7' is not of type 'integer'"),
])
def test_a_bad_value_is_refused_naming_the_param_and_no_run_is_made(nbflow_home: Path, conf: dict[str, Any],
                                                                      words: str) -> None:
    dag = _report_dag()
    dag.test()  # one good run: the store exists, and holds one run
    with pytest.raises(InvalidConfError) as caught:
        dag.test(conf=conf)
    message = str(caught.value)
    assert words in message and "report" in message and "No run was made" in message
    with sqlite3.connect(nbflow_home / "nbflow.db") as db:
        assert db.execute("select count(*) from dag_run").fetchone()[0] == 1


def test_a_param_without_default_must_come_with_the_trigger(nbflow_home: Path) -> None:
    with DAG("needs", timezone="UTC", schedule=None, params={"day": Param(type="string", format="date",
                                                                          description="the day to report")}) as dag:
        @task
        def show(params: dict[str, Any]) -> str:
            return params["day"]

        show()
    with pytest.raises(InvalidConfError, match="has no value for param 'day', which has no default. "
                                               r'Give it in conf, e.g. \{"day": ...\} \(the day to report\)'):
        dag.test()
    assert dag.test(conf={"day": "2024-06-01"}).outputs["show"] == "2024-06-01"


def test_params_that_could_never_hold_are_refused_when_the_dag_is_defined() -> None:
    with pytest.raises(InvalidOptionError, match="a DAG on a schedule starts runs without conf"):
        DAG("scheduled", schedule="@daily", start_date=T0, params={"day": Param(type="string")})
    with pytest.raises(InvalidOptionError, match="a default that obeys its own schema"):
        DAG("bad_default", params={"n": Param("five", type="integer")})
    with pytest.raises(InvalidOptionError, match="a valid JSON Schema"):
        Param(1, type="integr")
    with pytest.raises(InvalidOptionError, match="minimun=1 is not allowed: a JSON Schema keyword a Param understands"):
        Param(1, minimun=1)


def test_run_params_reads_declared_names_only() -> None:
    params = {"n": Param(1, type="integer"), "label": "x"}
    assert run_params(params, {"n": 2, "other": True}) == {"n": 2, "label": "x"}
    assert run_params(params, None) == {"n": 1, "label": "x"}


def test_the_dag_definition_describes_its_params() -> None:
    described = _report_dag().describe()["params"]
    assert described["region"] == {"schema": {"enum": ["eu", "us"]}, "description": "where the sales are",
                                   "default": "eu"}
    assert described["plain"] == "kept"


def test_a_trigger_from_the_command_line_is_one_line_and_exit_1(nbflow_home: Path, tmp_path: Path) -> None:
    dags = nbflow_home / "dags"
    dags.mkdir()
    (dags / "report.py").write_text(textwrap.dedent("""
        from nbflow import DAG, Param
        from nbflow.operators import EmptyOperator
        with DAG("report", timezone="UTC", params={"days": Param(7, type="integer", minimum=1)}):
            EmptyOperator(task_id="e")
    """))
    out = subprocess.run([sys.executable, "-m", "nbflow", "dags", "trigger", "report", "--queue", "-c", '{"days": -3}'],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "param 'days' the value -3, which is not allowed" in out.stderr
