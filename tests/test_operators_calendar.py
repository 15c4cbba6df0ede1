"""LatestOnlyOperator, BranchDayOfWeekOperator and BranchDateTimeOperator: real runs, and the task
states Airflow gives them (the branch task succeeds, the branch not taken is skipped, tasks further
down follow their trigger rules)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from nbflow import DAG
from nbflow.engine.runs import run_dag
from nbflow.errors import DagDefinitionError, InvalidOptionError
from nbflow.operators import (
    BaseBranchOperator,
    BranchDateTimeOperator,
    BranchDayOfWeekOperator,
    EmptyOperator,
    LatestOnlyOperator,
    WeekDay,
)
from nbflow.settings import load_settings

SEOUL = ZoneInfo("Asia/Seoul")


@pytest.fixture
def settings(nbflow_home: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NBFLOW_DATABASE_URL", sqlite_url)
    return load_settings()


def _states(run) -> dict[str, str]:
    return {task_id: state.value for task_id, state in run.task_states.items()}


# -- LatestOnlyOperator ------------------------------------------------------------------------------


def _latest_only_dag(dag_id: str, schedule: object = "@daily") -> DAG:
    with DAG(dag_id, schedule=schedule, start_date="2024-01-01", timezone="Asia/Seoul") as d:
        latest = LatestOnlyOperator(task_id="latest_only")
        report = EmptyOperator(task_id="report")
        after = EmptyOperator(task_id="after_report")
        cleanup = EmptyOperator(task_id="cleanup", trigger_rule="all_done")
        latest >> report >> [after, cleanup]
    return d


SKIPPED = {"latest_only": "success", "report": "skipped", "after_report": "skipped", "cleanup": "success"}
RAN = {"latest_only": "success", "report": "success", "after_report": "success", "cleanup": "success"}


def test_an_old_scheduled_run_skips_the_downstream(settings) -> None:
    run = run_dag(_latest_only_dag("latest_old"), settings=settings, run_type="scheduled", logical_date="2024-01-02")
    assert _states(run) == SKIPPED
    assert run.outputs["latest_only"] == []


def test_the_latest_scheduled_run_runs_the_downstream(settings) -> None:
    d = _latest_only_dag("latest_now")
    latest = d.timetable.latest_at_or_before(datetime.now(UTC))
    run = run_dag(d, settings=settings, run_type="scheduled", logical_date=latest)
    assert _states(run) == RAN
    assert run.outputs["latest_only"] == ["report"]


def test_the_rule_is_now_within_the_next_interval() -> None:
    d = _latest_only_dag("latest_rule")
    task = d.task_dict["latest_only"]
    end = datetime(2024, 3, 10, tzinfo=SEOUL)
    context = {"run_id": "scheduled__x", "data_interval_end": end}
    assert not task.is_latest(context, now=end)  # the run's own end is still its own interval
    assert task.is_latest(context, now=end + timedelta(seconds=1))
    assert task.is_latest(context, now=end + timedelta(days=1))  # the next run's time, included
    assert not task.is_latest(context, now=end + timedelta(days=1, seconds=1))
    assert not task.is_latest({**context, "run_id": "backfill__x"}, now=end + timedelta(days=3))


@pytest.mark.parametrize("run_type", ["manual", "test"])
def test_runs_started_by_hand_are_never_skipped(settings, run_type: str) -> None:
    run = run_dag(_latest_only_dag(f"latest_{run_type}"), settings=settings, run_type=run_type, logical_date="2024-01-02")
    assert _states(run) == RAN


def test_dag_test_is_not_skipped(nbflow_home: Path) -> None:
    assert _states(_latest_only_dag("latest_dag_test").test(logical_date="2024-01-02")) == RAN


def test_an_old_backfill_run_is_skipped(nbflow_home: Path) -> None:
    runs = _latest_only_dag("latest_backfill").backfill("2024-01-02", "2024-01-03")
    assert [_states(r) for r in runs] == [SKIPPED, SKIPPED]


def test_a_dag_without_a_next_time_runs_the_downstream(settings) -> None:
    run = run_dag(_latest_only_dag("latest_once", schedule="@once"), settings=settings, run_type="scheduled",
                  logical_date="2024-01-01")
    assert _states(run) == RAN


def test_the_rule_holds_in_a_worker_process(settings) -> None:
    # the task travels without its DAG: it must carry the DAG's schedule with it
    run = run_dag(_latest_only_dag("latest_process"), settings=settings, executor="process",
                  run_type="scheduled", logical_date="2024-01-02")
    assert _states(run) == SKIPPED


# -- BranchDayOfWeekOperator -------------------------------------------------------------------------


def _weekday_dag(dag_id: str, **options: object) -> DAG:
    with DAG(dag_id, schedule="@daily", start_date="2024-01-01", timezone="Asia/Seoul") as d:
        branch = BranchDayOfWeekOperator(task_id="branch", **options)
        branch >> [EmptyOperator(task_id="weekend"), EmptyOperator(task_id="workday"), EmptyOperator(task_id="other")]
    return d


def test_week_day_uses_the_dags_zone(nbflow_home: Path) -> None:
    # 2024-01-06 01:00 in Seoul is a Saturday there, and still Friday in UTC
    d = _weekday_dag("weekday_zone", follow_task_ids_if_true="weekend", follow_task_ids_if_false=["workday"],
                     week_day={WeekDay.SATURDAY, WeekDay.SUNDAY}, use_task_logical_date=True)
    assert _states(d.test(logical_date="2024-01-06T01:00:00")) == {
        "branch": "success", "weekend": "success", "workday": "skipped", "other": "skipped"}
    assert _states(d.test(logical_date="2024-01-05T23:00:00")) == {
        "branch": "success", "weekend": "skipped", "workday": "success", "other": "skipped"}


def test_week_day_by_name_and_an_empty_follow_list_skip_everything(nbflow_home: Path) -> None:
    d = _weekday_dag("weekday_empty", follow_task_ids_if_true=["weekend", "other"], follow_task_ids_if_false=[],
                     week_day=["saturday", "Sunday"], use_task_logical_date=True)
    assert _states(d.test(logical_date="2024-01-08T12:00:00")) == {  # a Monday
        "branch": "success", "weekend": "skipped", "workday": "skipped", "other": "skipped"}
    assert _states(d.test(logical_date="2024-01-07T12:00:00")) == {  # a Sunday
        "branch": "success", "weekend": "success", "workday": "skipped", "other": "success"}


def test_week_day_judges_today_by_default(nbflow_home: Path) -> None:
    today = WeekDay(datetime.now(SEOUL).isoweekday())
    d = _weekday_dag("weekday_today", follow_task_ids_if_true="workday", follow_task_ids_if_false="weekend",
                     week_day=today)
    states = _states(d.test(logical_date="2000-01-01"))
    if WeekDay(datetime.now(SEOUL).isoweekday()) == today:  # the day did not change during the run
        assert states["workday"] == "success" and states["weekend"] == "skipped"


def test_week_day_conversions() -> None:
    assert WeekDay.convert("monday") == {1}
    assert WeekDay.convert([WeekDay.FRIDAY, "Saturday"]) == {5, 6}
    assert WeekDay.get_weekday_number("SUNDAY") == 7
    with pytest.raises(ValueError, match="'Funday' is not a day of the week"):
        WeekDay.convert("Funday")


def test_bad_week_day_options_name_the_task() -> None:
    with DAG("weekday_bad", timezone="UTC"):
        with pytest.raises(DagDefinitionError, match=r"task 'b1': week_day='Funday' is not usable"):
            BranchDayOfWeekOperator(task_id="b1", follow_task_ids_if_true="x", follow_task_ids_if_false="y", week_day="Funday")
        with pytest.raises(InvalidOptionError, match=r"task 'b2': week_day=\[\] is not allowed"):
            BranchDayOfWeekOperator(task_id="b2", follow_task_ids_if_true="x", follow_task_ids_if_false="y", week_day=[])
        with pytest.raises(InvalidOptionError, match=r"task 'b3': follow_task_ids_if_true=3 is not allowed"):
            BranchDayOfWeekOperator(task_id="b3", follow_task_ids_if_true=3, follow_task_ids_if_false="y", week_day="monday")


def test_a_follow_id_that_is_not_downstream_fails_the_branch(nbflow_home: Path) -> None:
    d = _weekday_dag("weekday_unknown", follow_task_ids_if_true="nowhere", follow_task_ids_if_false="nowhere",
                     week_day="monday")
    run = d.test()
    assert run.task_states["branch"] == "failed"
    assert {run.task_states[t] for t in ("weekend", "workday", "other")} == {"upstream_failed"}


# -- BranchDateTimeOperator --------------------------------------------------------------------------


def _datetime_dag(dag_id: str, lower: object, upper: object, **options: object) -> DAG:
    with DAG(dag_id, schedule="@daily", start_date="2024-01-01", timezone="Asia/Seoul") as d:
        branch = BranchDateTimeOperator(task_id="branch", target_lower=lower, target_upper=upper,
                                        follow_task_ids_if_true="inside", follow_task_ids_if_false="outside", **options)
        branch >> [EmptyOperator(task_id="inside"), EmptyOperator(task_id="outside")]
    return d


INSIDE = {"branch": "success", "inside": "success", "outside": "skipped"}
OUTSIDE = {"branch": "success", "inside": "skipped", "outside": "success"}


@pytest.mark.parametrize(("lower", "upper", "at", "expected"), [
    (time(9), time(17), "2024-01-02T09:00:00", INSIDE),       # bounds are included
    (time(9), time(17), "2024-01-02T17:00:01", OUTSIDE),
    (time(22), time(2), "2024-01-02T23:30:00", INSIDE),       # crosses midnight: to 02:00 the next day
    (time(22), time(2), "2024-01-02T01:00:00", OUTSIDE),      # Airflow's window starts on the judged day
    (None, time(12), "2024-01-02T11:00:00", INSIDE),          # an open lower bound
    (time(12), None, "2024-01-02T11:00:00", OUTSIDE),
    (datetime(2024, 1, 1), datetime(2024, 1, 3), "2024-01-02T00:00:00", INSIDE),  # naive: the DAG's zone
    (datetime(2024, 1, 2, 12, tzinfo=UTC), None, "2024-01-02T20:00:00", OUTSIDE),  # 11:00 UTC, before 12:00 UTC
    (datetime(2024, 1, 2, 12, tzinfo=UTC), None, "2024-01-02T21:00:00", INSIDE),
])
def test_datetime_branch_on_the_logical_date(nbflow_home: Path, lower, upper, at: str, expected) -> None:
    d = _datetime_dag("datetime_logical", lower, upper, use_task_logical_date=True)
    assert _states(d.test(logical_date=at)) == expected


def test_datetime_branch_judges_now_by_default(nbflow_home: Path) -> None:
    now = datetime.now(UTC)
    around = _datetime_dag("datetime_now", now - timedelta(hours=1), now + timedelta(hours=1))
    assert _states(around.test(logical_date="2000-01-01")) == INSIDE
    past = _datetime_dag("datetime_past", None, now - timedelta(hours=1))
    assert _states(past.test(logical_date="2000-01-01")) == OUTSIDE


def test_datetime_branch_refuses_bad_bounds() -> None:
    with DAG("datetime_bad", timezone="UTC"):
        with pytest.raises(DagDefinitionError, match=r"task 'b1': target_lower and target_upper are both None"):
            BranchDateTimeOperator(task_id="b1", target_lower=None, target_upper=None,
                                   follow_task_ids_if_true="x", follow_task_ids_if_false="y")
        with pytest.raises(InvalidOptionError, match=r"task 'b2': target_upper='17:00' is not allowed"):
            BranchDateTimeOperator(task_id="b2", target_lower=time(9), target_upper="17:00",
                                   follow_task_ids_if_true="x", follow_task_ids_if_false="y")


def test_base_branch_operator_subclass(nbflow_home: Path) -> None:
    class PickFirst(BaseBranchOperator):
        def choose_branch(self, context):
            return "first"

    with DAG("custom_branch", timezone="UTC") as d:
        PickFirst(task_id="pick") >> [EmptyOperator(task_id="first"), EmptyOperator(task_id="second")]
    assert _states(d.test()) == {"pick": "success", "first": "success", "second": "skipped"}
