"""Authoring DAGs: construction, wiring and the errors for DAGs that cannot run."""

from __future__ import annotations

import pickle
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from nbflow import DAG, TaskGroup, TriggerRule, chain, cross_downstream
from nbflow.errors import (
    CycleError,
    DagDefinitionError,
    DependencyError,
    DuplicateTaskIdError,
    InvalidDateError,
    InvalidOptionError,
    ScheduleError,
    TaskNotFoundError,
    TaskOutsideDagError,
    TimezoneError,
    UnknownArgumentError,
    UnknownTriggerRuleError,
)
from nbflow.operators import BashOperator, EmptyOperator, PythonOperator


def test_classic_airflow_style_file_builds_unchanged() -> None:
    with DAG(
        dag_id="simple_example",
        schedule_interval="5 6 * * *",
        catchup=False,
        default_args={"start_date": datetime(2022, 9, 7)},
        timezone="UTC",
    ) as dag:
        BashOperator(task_id="run_bash1", bash_command="echo hello")
    assert dag.task_ids == ["run_bash1"]
    assert dag.start_date == datetime(2022, 9, 7, tzinfo=ZoneInfo("UTC"))
    assert dag.next_runs(2, after="2022-09-07T06:05") == [
        datetime(2022, 9, 8, 6, 5, tzinfo=ZoneInfo("UTC")),
        datetime(2022, 9, 9, 6, 5, tzinfo=ZoneInfo("UTC")),
    ]


def test_start_date_accepts_str_date_and_datetime_in_the_dag_zone() -> None:
    seoul = ZoneInfo("Asia/Seoul")
    for value in ("2024-01-01", date(2024, 1, 1), datetime(2024, 1, 1)):
        dag = DAG(f"d_{type(value).__name__}", start_date=value, timezone="Asia/Seoul")
        assert dag.start_date == datetime(2024, 1, 1, tzinfo=seoul)


def test_aware_start_date_gives_the_dag_its_zone() -> None:
    dag = DAG("zoned", start_date=datetime(2024, 1, 1, tzinfo=ZoneInfo("Europe/Berlin")))
    assert str(dag.timezone) == "Europe/Berlin"


def test_rshift_lshift_with_lists_and_chain() -> None:
    with DAG("wiring") as dag:
        a, b, c, d, e, f = (EmptyOperator(task_id=x) for x in "abcdef")
        a >> [b, c]
        d << [b, c]
        chain(d, [e, f])
    assert dag.get_task("a").downstream_task_ids == {"b", "c"}
    assert dag.get_task("d").upstream_task_ids == {"b", "c"}
    assert dag.get_task("e").upstream_task_ids == {"d"}
    assert dag.topological_order()[0] == "a" and set(dag.topological_order()[-2:]) == {"e", "f"}


def test_chain_links_lists_pairwise_and_cross_downstream_links_all() -> None:
    with DAG("pairs") as dag:
        a1, a2, b1, b2, c1, c2 = (EmptyOperator(task_id=x) for x in ["a1", "a2", "b1", "b2", "c1", "c2"])
        chain([a1, a2], [b1, b2])
        cross_downstream([b1, b2], [c1, c2])
    assert dag.get_task("b1").upstream_task_ids == {"a1"}
    assert dag.get_task("b2").upstream_task_ids == {"a2"}
    assert dag.get_task("c1").upstream_task_ids == {"b1", "b2"}
    with DAG("uneven"):
        x = [EmptyOperator(task_id="x1"), EmptyOperator(task_id="x2")]
        y = [EmptyOperator(task_id="y1")]
        with pytest.raises(DependencyError, match="same length"):
            chain(x, y)


def test_cycle_error_names_the_path() -> None:
    with pytest.raises(CycleError) as info:
        with DAG("loop"):
            a, b, c = (EmptyOperator(task_id=x) for x in "abc")
            a >> b >> c >> a
    message = str(info.value)
    assert "DAG 'loop'" in message and "cycle" in message
    assert info.value.path[0] == info.value.path[-1]
    assert set(info.value.path) == {"a", "b", "c"}
    assert " >> ".join(info.value.path) in message


def test_duplicate_task_id_names_dag_task_and_fix() -> None:
    with DAG("dups"):
        EmptyOperator(task_id="same")
        with pytest.raises(DuplicateTaskIdError, match=r"DAG 'dups', task 'same'.*another task_id"):
            EmptyOperator(task_id="same")


def test_task_outside_any_dag() -> None:
    with pytest.raises(TaskOutsideDagError, match=r"task 'lonely'.*with DAG"):
        EmptyOperator(task_id="lonely")


def test_unknown_trigger_rule_lists_the_valid_ones() -> None:
    with DAG("rules"):
        with pytest.raises(UnknownTriggerRuleError, match=r"'all_sucess'.*all_success"):
            EmptyOperator(task_id="t", trigger_rule="all_sucess")
        assert EmptyOperator(task_id="ok", trigger_rule="one_failed").trigger_rule is TriggerRule.ONE_FAILED


def test_unknown_default_args_key_suggests_the_right_one() -> None:
    with pytest.raises(UnknownArgumentError, match=r"DAG 'typo'.*'retires'.*Did you mean 'retries'"):
        DAG("typo", default_args={"retires": 2})


def test_unknown_operator_argument() -> None:
    with DAG("args"):
        with pytest.raises(UnknownArgumentError, match=r"task 'x'.*'retrys'"):
            EmptyOperator(task_id="x", retrys=3)


def test_unparsable_start_date() -> None:
    with pytest.raises(InvalidDateError, match=r"DAG 'bad_date'.*start_date='yesterday'.*ISO date"):
        DAG("bad_date", start_date="yesterday")


def test_bad_cron_names_the_field() -> None:
    with pytest.raises(ScheduleError) as info:
        DAG("bad_cron", schedule="0 25 * * *")
    assert info.value.field == "hour"
    assert "DAG 'bad_cron'" in str(info.value)


def test_unknown_time_zone() -> None:
    with pytest.raises(TimezoneError, match=r"'Mars/Olympus'.*IANA"):
        DAG("mars", timezone="Mars/Olympus")


def test_bad_ids() -> None:
    with pytest.raises(DagDefinitionError, match="dag_id"):
        DAG("has space")
    with DAG("ids"):
        with pytest.raises(DagDefinitionError, match="task_id"):
            EmptyOperator(task_id="no/slash")


def test_default_args_fill_unset_options_and_explicit_options_win() -> None:
    with DAG("defaults", default_args={"retries": 3, "retry_delay": timedelta(seconds=5), "owner": "ana", "timeout": 9}) as dag:
        a = EmptyOperator(task_id="a")
        b = EmptyOperator(task_id="b", retries=0, execution_timeout=timedelta(seconds=2))
    assert (a.retries, a.retry_delay, a.owner, a.execution_timeout_seconds) == (3, timedelta(seconds=5), "ana", 9)
    assert (b.retries, b.execution_timeout_seconds) == (0, 2)
    assert dag.owner == "ana"


def test_retry_delay_with_exponential_backoff_and_cap() -> None:
    with DAG("backoff"):
        t = EmptyOperator(task_id="t", retry_delay=timedelta(seconds=2), retry_exponential_backoff=True,
                          max_retry_delay=timedelta(seconds=5))
    assert [t.retry_delay_for(n) for n in (1, 2, 3)] == [2, 4, 5]


def test_task_group_prefixes_ids_and_wires_roots_and_leaves() -> None:
    with DAG("groups") as dag:
        start = EmptyOperator(task_id="start")
        with TaskGroup("extract") as extract:
            a = EmptyOperator(task_id="a")
            b = EmptyOperator(task_id="b")
            a >> b
            with TaskGroup("inner"):
                EmptyOperator(task_id="deep")
        end = EmptyOperator(task_id="end")
        start >> extract >> end
    assert set(dag.task_ids) == {"start", "extract.a", "extract.b", "extract.inner.deep", "end"}
    assert dag.get_task("extract.a").upstream_task_ids == {"start"}
    assert dag.get_task("extract.inner.deep").upstream_task_ids == {"start"}
    assert dag.get_task("end").upstream_task_ids == {"extract.b", "extract.inner.deep"}
    assert dag.describe()["groups"]["extract"]["tasks"] == ["extract.a", "extract.b", "extract.inner.deep"]


def test_linking_tasks_of_two_dags_is_refused() -> None:
    with DAG("one"):
        a = EmptyOperator(task_id="a")
    with DAG("two"):
        b = EmptyOperator(task_id="b")
        with pytest.raises(DependencyError, match="same DAG"):
            b >> a


def test_get_task_names_known_tasks() -> None:
    with DAG("lookup") as dag:
        EmptyOperator(task_id="present")
    with pytest.raises(TaskNotFoundError, match="present"):
        dag.get_task("absent")


def test_operator_pickles_without_its_dag() -> None:
    with DAG("pickled"):
        op = PythonOperator(task_id="p", python_callable=len, op_args=[[1, 2]])
    clone = pickle.loads(pickle.dumps(op))
    assert clone.dag is None and clone.task_id == "p" and clone.op_args == [[1, 2]]


def test_repr_and_html() -> None:
    with DAG("shown", schedule="@daily", timezone="UTC") as dag:
        EmptyOperator(task_id="only")
    assert repr(dag) == "<DAG 'shown': 1 task, schedule @daily (UTC)>"
    assert "1 task," in dag._repr_html_()
    assert "<table>" in dag._repr_html_() and "only" in dag._repr_html_()


@pytest.mark.parametrize(("option", "value", "allowed"), [
    ("retries", -1, "whole number from 0"),
    ("retries", 1.5, "whole number from 0"),
    ("retries", "2", "whole number from 0"),
    ("retries", True, "whole number from 0"),
    ("retries", 2**31, "whole number from 0"),  # more tries than the store can count
    ("execution_timeout", -5, "more than 0 seconds"),
    ("execution_timeout", 0, "more than 0 seconds"),
    ("execution_timeout", timedelta(0), "more than 0 seconds"),
    ("execution_timeout", float("nan"), "more than 0 seconds"),
    ("execution_timeout", "1h", "more than 0 seconds"),
    ("timeout", -1, "more than 0 seconds"),
    ("retry_delay", -1, "0 or more seconds"),
    ("retry_delay", timedelta(seconds=-30), "0 or more seconds"),
    ("max_retry_delay", float("inf"), "0 or more seconds"),
    ("pool_slots", 0, "whole number from 1"),
    ("pool_slots", 2.0, "whole number from 1"),
    ("priority_weight", 1.5, "whole number from"),
    ("priority_weight", 2**40, "whole number from"),
    ("pool", "", "non-empty string"),
])
def test_task_options_out_of_range_are_refused_naming_dag_task_option_and_what_is_allowed(
        option: str, value: object, allowed: str) -> None:
    with DAG("limits"):
        with pytest.raises(InvalidOptionError) as info:
            EmptyOperator(task_id="t", **{option: value})
    error = info.value
    assert isinstance(error, DagDefinitionError)
    assert (error.dag_id, error.task_id, error.option, error.value) == ("limits", "t", option, repr(value))
    assert str(error).startswith(f"DAG 'limits', task 't': {option}={value!r} is not allowed: give ")
    assert allowed in str(error) and "\n" not in str(error)


@pytest.mark.parametrize(("option", "value"), [
    ("retries", -1), ("execution_timeout", 0), ("timeout", -5), ("retry_delay", -1), ("pool_slots", 0),
    ("priority_weight", "high"),
])
def test_default_args_are_checked_when_the_dag_is_built_and_again_for_each_task(option: str, value: object) -> None:
    with pytest.raises(InvalidOptionError, match=rf"^DAG 'defaults': {option}={value!r} \(from default_args\) is not allowed"):
        DAG("defaults", default_args={option: value})
    # a task reading it finds the same problem, named as its own
    dag = DAG("defaults", default_args={"retries": 1})
    dag.default_args[option] = value
    with dag, pytest.raises(InvalidOptionError) as info:
        EmptyOperator(task_id="t")
    assert info.value.task_id == "t" and "(from default_args)" in str(info.value)


def test_good_option_values_are_kept_as_given() -> None:
    class Index:  # a whole number that is not an int, as numpy's integers are
        def __index__(self) -> int:
            return 2

    with DAG("fine", default_args={"retries": None, "timeout": 3}) as dag:
        a = EmptyOperator(task_id="a", pool=None)
        b = EmptyOperator(task_id="b", retries=Index(), retry_delay=0, max_retry_delay=timedelta(minutes=1),
                          execution_timeout=timedelta(seconds=1.5), pool_slots=3, priority_weight=-7, pool="db")
    assert (a.retries, a.execution_timeout_seconds, a.pool) == (0, 3, "default_pool")
    assert (b.retries, type(b.retries), b.retry_delay, b.max_retry_delay) == (2, int, 0, timedelta(minutes=1))
    assert (b.execution_timeout_seconds, b.pool_slots, b.priority_weight, b.pool) == (1.5, 3, -7, "db")
    assert dag.default_args == {"retries": 0, "timeout": 3}


def test_timeout_and_execution_timeout_together_are_refused() -> None:
    with DAG("both"):
        with pytest.raises(DagDefinitionError, match=r"task 't': give either timeout or execution_timeout"):
            EmptyOperator(task_id="t", timeout=5, execution_timeout=10)


@pytest.mark.parametrize("option", ["max_active_runs", "max_active_tasks"])
@pytest.mark.parametrize("value", [0, -1, 1.5, "4", None])
def test_dag_concurrency_limits_below_one_or_not_whole_are_refused(option: str, value: object) -> None:
    with pytest.raises(InvalidOptionError, match=rf"^DAG 'busy': {option}={value!r} is not allowed: give a whole number from 1"):
        DAG("busy", **{option: value})
    assert getattr(DAG("busy", **{option: 3}), option) == 3


def test_dagrun_timeout_is_a_positive_duration() -> None:
    from datetime import timedelta

    assert DAG("slow", dagrun_timeout=timedelta(seconds=60)).dagrun_timeout == timedelta(seconds=60)
    assert DAG("slow", dagrun_timeout=1.5).dagrun_timeout == timedelta(seconds=1.5)
    assert DAG("slow", dagrun_timeout=None).dagrun_timeout is None
    for bad in (0, -1, float("inf"), "1h", True):
        with pytest.raises(InvalidOptionError, match=r"^DAG 'slow': dagrun_timeout=.* is not allowed: give more than 0"):
            DAG("slow", dagrun_timeout=bad)


def test_cell_timeout_of_a_notebook_task_must_be_positive() -> None:
    from nbflow.operators import NotebookOperator

    with DAG("nb"):
        with pytest.raises(InvalidOptionError, match=r"task 'report': cell_timeout=0 is not allowed"):
            NotebookOperator(task_id="report", notebook="r.ipynb", cell_timeout=0)
        assert NotebookOperator(task_id="ok", notebook="r.ipynb", cell_timeout=timedelta(minutes=1)).cell_timeout == 60


# -- Airflow options nbflow does not honour are refused, unless they change nothing ------------------


@pytest.mark.parametrize(("option", "value", "instead"), [
    ("queue", "gpu", "pool"),
    ("executor_config", {"KubernetesExecutor": {"image": "x"}}, "executor="),
])
def test_unsupported_airflow_option_is_refused_naming_dag_task_and_what_to_use(option: str, value: object, instead: str) -> None:
    with DAG("refusals"):
        with pytest.raises(InvalidOptionError, match=rf"DAG 'refusals', task 't': {option}=.*{instead}") as info:
            EmptyOperator(task_id="t", **{option: value})
    assert info.value.option == option


@pytest.mark.parametrize(("option", "value", "instead"), [
    ("queue", "gpu", "pool"),
    ("executor_config", {"a": 1}, "executor="),
    ("email", "ops", "e-mail address"),
])
def test_unsupported_airflow_option_in_default_args_is_refused(option: str, value: object, instead: str) -> None:
    with pytest.raises(InvalidOptionError, match=rf"DAG 'refused_defaults': {option}=.*\(from default_args\).*{instead}"):
        DAG("refused_defaults", default_args={option: value})


def test_email_is_kept_and_sent_on_failure_and_retry_by_default() -> None:
    with DAG("mail"):
        t = EmptyOperator(task_id="t", email="a@example.com", email_on_failure=False)
    assert (t.email, t.email_on_failure, t.email_on_retry) == ("a@example.com", False, True)


def test_airflow_defaults_of_refused_options_change_nothing_and_pass(nbflow_home: object) -> None:
    # the classic Airflow default_args: an address with both e-mail flags off sends nothing
    with DAG("classic", default_args={"queue": "default", "executor_config": {}, "email": ["ops@example.com"],
                                      "email_on_failure": False, "email_on_retry": False,
                                      "depends_on_past": False}) as d:
        a = EmptyOperator(task_id="a")
        b = EmptyOperator(task_id="b", email_on_failure=True, email=None, queue=None)
    assert (a.queue, a.executor_config, a.email_on_failure) == ("default", None, False)
    assert (b.queue, b.email_on_failure, b.email) == ("default", True, None)
    assert d.test().state == "success"


@pytest.mark.parametrize("option", ["depends_on_past", "wait_for_downstream", "email_on_failure", "email_on_retry"])
def test_flags_must_be_booleans(option: str) -> None:
    with DAG("flags"):
        with pytest.raises(InvalidOptionError, match=rf"task 't': {option}='yes'.*True or False"):
            EmptyOperator(task_id="t", **{option: "yes"})


def test_wait_for_downstream_implies_depends_on_past() -> None:
    with DAG("past", default_args={"wait_for_downstream": True}):
        task = EmptyOperator(task_id="t")
    assert task.depends_on_past is True and task.wait_for_downstream is True


def test_on_execute_callback_must_be_callable() -> None:
    with DAG("cb"):
        with pytest.raises(InvalidOptionError, match=r"task 't': on_execute_callback='print'.*function"):
            EmptyOperator(task_id="t", on_execute_callback="print")


def test_unknown_dag_argument_suggests_the_right_one() -> None:
    with pytest.raises(UnknownArgumentError, match=r"^DAG 'x': unknown DAG argument key 'shedule'\. Did you mean "
                                                   r"'schedule'\? Known keys: .*schedule_interval"):
        DAG("x", shedule="@daily")


def test_unknown_dag_decorator_argument_is_refused_where_it_is_written() -> None:
    from nbflow import dag

    with pytest.raises(UnknownArgumentError, match=r"DAG 'nightly'.*'catch_up'.*Did you mean 'catchup'"):
        @dag(catch_up=False)
        def nightly() -> None:
            pass


def test_display_names_are_what_views_show_and_ids_stay() -> None:
    from nbflow.jupyter.graph import GraphModel

    with DAG("sales_eu", dag_display_name="Sales (EU) \U0001F4C8", timezone="UTC") as d:
        EmptyOperator(task_id="load", task_display_name="Load the day's sales")
        EmptyOperator(task_id="plain")
    assert d.dag_display_name == "Sales (EU) \U0001F4C8" and d.dag_id == "sales_eu"
    assert d.get_task("load").task_display_name == "Load the day's sales"
    assert d.get_task("plain").task_display_name == "plain"
    described = d.describe()
    assert described["dag_display_name"] == "Sales (EU) \U0001F4C8"
    assert [t["display_name"] for t in described["tasks"]] == ["Load the day's sales", "plain"]
    for source in (d, described):  # a DAG here, or its definition as the store keeps it
        labels = {node["id"]: node["label"] for node in GraphModel.from_dag(source).nodes}
        assert labels == {"load": "Load the day's sales", "plain": "plain"}
    assert DAG("no_name").dag_display_name == "no_name"


@pytest.mark.parametrize("value", ["", "two\nlines", 42, "x" * 201])
def test_bad_display_names_are_refused(value: object) -> None:
    with pytest.raises(InvalidOptionError, match="dag_display_name=.* is not allowed: one line of text"):
        DAG("bad_name", dag_display_name=value)
    with pytest.raises(InvalidOptionError, match="task_display_name=.* is not allowed: one line of text"):
        with DAG("bad_task_name"):
            EmptyOperator(task_id="t", task_display_name=value)
