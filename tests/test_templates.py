"""The template context and Jinja rendering."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from nbflow import DAG
from nbflow.errors import InvalidOptionError, TemplateError
from nbflow.operators import BashOperator, PythonOperator
from nbflow.templates import build_context, render_fields, render_value


@pytest.fixture
def context():
    tz = ZoneInfo("America/New_York")
    with DAG("ctx", timezone="America/New_York", params={"region": "eu"}) as dag:
        op = BashOperator(task_id="t", bash_command="echo {{ ds }}", params={"limit": 3})
    ld = datetime(2024, 3, 10, 23, 30, tzinfo=tz)
    return build_context(dag=dag, task=op, run_id="r1", logical_date=ld,
                         data_interval_start=datetime(2024, 3, 9, 23, 30, tzinfo=tz), data_interval_end=ld,
                         conf={"k": "v"}, ti=None), op


def test_local_and_utc_values(context) -> None:
    ctx, _ = context
    assert ctx["ds"] == "2024-03-10" and ctx["ds_utc"] == "2024-03-11"
    assert ctx["ds_nodash"] == "20240310" and ctx["ts"] == "2024-03-10T23:30:00-04:00"
    assert ctx["logical_date_utc"].isoformat() == "2024-03-11T03:30:00+00:00"
    assert ctx["data_interval_start_utc"].isoformat() == "2024-03-10T04:30:00+00:00"
    assert ctx["params"] == {"region": "eu", "limit": 3}


def test_render_nested_values_and_macros(context) -> None:
    ctx, op = context
    value = {"cmd": ["{{ ds }}", "{{ params.region }}-{{ conf.k }}"], "n": 4, "plain": "no template"}
    assert render_value(value, ctx) == {"cmd": ["2024-03-10", "eu-v"], "n": 4, "plain": "no template"}
    assert render_value("{{ macros.ds_add(ds, 7) }}", ctx) == "2024-03-17"
    render_fields(op, ctx)
    assert op.bash_command == "echo 2024-03-10"


def test_undefined_variable_is_an_error_naming_it(context) -> None:
    ctx, op = context
    with pytest.raises(TemplateError) as info:
        render_value("echo {{ dss }}", ctx, op, "bash_command")
    assert info.value.variable == "dss"
    assert "DAG 'ctx', task 't'" in str(info.value) and "bash_command" in str(info.value)


def test_syntax_error_names_the_line(context) -> None:
    ctx, op = context
    with pytest.raises(TemplateError, match="syntax error on line 2"):
        render_value("ok\n{{ ds ", ctx, op, "bash_command")


# -- template files: a field naming a .sh / .sql file, {% include %}, template_searchpath ------------


def _file_dag(tmp_path: Path, **dag_args: Any) -> DAG:
    """A DAG whose file lives in tmp_path, with a script beside it and SQL under sql/."""
    (tmp_path / "greet.sh").write_text("echo hello {{ params.who }} on {{ ds }}\n")
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "part.sql").write_text("WHERE day = '{{ ds }}'")
    (tmp_path / "sql" / "daily.sql").write_text("SELECT * FROM sales {% include 'part.sql' %}")
    with DAG("files", timezone="UTC", params={"who": "team"}, fileloc=str(tmp_path / "files.py"),
             **dag_args) as dag:
        BashOperator(task_id="script", bash_command="greet.sh")
        PythonOperator(task_id="query", python_callable=_echo, op_kwargs={"text": "daily.sql"},
                       templates_exts=[".sql"])
        BashOperator(task_id="inline", bash_command="echo '{% include \"greet.sh\" %}' | wc -l")
    return dag


def _echo(text: str) -> str:
    return text


@pytest.mark.parametrize("executor", ["inline", "process"])
def test_a_field_naming_a_template_file_is_read_and_rendered(nbflow_home: Path, tmp_path: Path,
                                                             executor: str) -> None:
    dag = _file_dag(tmp_path, template_searchpath="sql")
    run = dag.test(logical_date="2024-05-01", executor=executor)
    assert run.state == "success", run.summary()
    assert run.outputs["script"] == "hello team on 2024-05-01"
    assert run.outputs["query"] == "SELECT * FROM sales WHERE day = '2024-05-01'"
    assert run.outputs["inline"] == "2"  # the included script's two lines (its text and the newline)
    assert dag.template_searchpath == [str(tmp_path / "sql")]


def test_a_missing_template_file_fails_the_task_naming_the_file_and_where_it_was_looked_for(
        nbflow_home: Path, tmp_path: Path) -> None:
    dag = _file_dag(tmp_path)  # no template_searchpath: daily.sql (under sql/) is not found
    run = dag.test(logical_date="2024-05-01")
    assert run.task_states["script"] == "success" and run.task_states["query"] == "failed"
    error = run.errors["query"]
    assert "template field 'op_kwargs': the template file 'daily.sql' is not in " + str(tmp_path) in error
    assert "add its folder to the DAG's template_searchpath" in error


def test_a_template_file_outside_the_search_path_is_not_read(nbflow_home: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.sh").write_text("echo secret\n")
    (tmp_path / "dags").mkdir()
    with DAG("escape", timezone="UTC", fileloc=str(tmp_path / "dags" / "escape.py")) as dag:
        BashOperator(task_id="t", bash_command="../secret.sh")
    run = dag.test()
    assert run.task_states["t"] == "failed" and "'../secret.sh' is not in" in run.errors["t"]


def test_template_file_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(InvalidOptionError, match="template_searchpath=42 is not allowed"):
        DAG("bad_path", template_searchpath=42)
    with pytest.raises(InvalidOptionError, match="templates_exts='.sql' is not allowed"):
        with DAG("bad_ext"):
            PythonOperator(task_id="t", python_callable=_echo, op_args=["x"], templates_exts=".sql")
