"""The template context and Jinja rendering."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from nbflow import DAG
from nbflow.errors import TemplateError
from nbflow.operators import BashOperator
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
