"""The asset model: URIs checked where they are written, equality by URI, conditions, and asset
schedules and outlets refused in one line when they cannot work."""

from __future__ import annotations

import pickle

import pytest

from nbflow import DAG, Asset, AssetAll, AssetAny, AssetOrTimeSchedule, Dataset
from nbflow.errors import InvalidAssetError, ScheduleError
from nbflow.operators import EmptyOperator


@pytest.mark.parametrize("uri", ["file:///data/sales.csv", "s3://bucket/key", "postgres://db/schema/table",
                                 "sales", "team.sales_v2", "gs://b"])
def test_good_uris(uri: str) -> None:
    assert Asset(uri).uri == uri


@pytest.mark.parametrize(("uri", "says"), [
    ("", "empty"), ("sales data", "space"), ("file://", "nothing after it"), ("1x:y", "not a URI scheme"),
    (42, "not a int"), ("x" * 501, "longer than 500"), ("a\nb", "control character"),
])
def test_bad_uris_are_refused_in_one_line(uri: object, says: str) -> None:
    with pytest.raises(InvalidAssetError, match=says) as info:
        Asset(uri)  # type: ignore[arg-type]
    assert "\n" not in str(info.value).replace(repr(uri), "")


def test_equal_by_uri_with_extra_and_pickled() -> None:
    a = Asset("s3://b/k", extra={"owner": "sales"})
    assert a == Asset("s3://b/k") and hash(a) == hash(Asset("s3://b/k")) and a != Asset("s3://b/other")
    assert a.extra == {"owner": "sales"}
    copy = pickle.loads(pickle.dumps(a))
    assert copy == a and copy.extra == {"owner": "sales"}
    assert Dataset is Asset
    with pytest.raises(InvalidAssetError, match="JSON"):
        Asset("x", extra={"when": object()})
    with pytest.raises(InvalidAssetError, match="dict with text keys"):
        Asset("x", extra=["no"])  # type: ignore[arg-type]


def test_conditions() -> None:
    a, b, c = Asset("a"), Asset("b"), Asset("c")
    cond = a & (b | c)
    assert isinstance(cond, AssetAll) and isinstance(cond.members[1], AssetAny)
    assert cond.expression() == "a & (b | c)"
    assert cond.uris() == ("a", "b", "c")
    assert cond.holds({"a", "c"}) and not cond.holds({"a"}) and not cond.holds({"b", "c"})
    assert (a & b & c).members == (a, b, c)  # flattened
    assert (a | b).holds({"b"})
    assert cond.to_json() == {"all": ["a", {"any": ["b", "c"]}]}


def test_asset_schedules_make_asset_timetables() -> None:
    a, b = Asset("a"), Asset("b")
    for schedule, expression in ((a, "a"), ([a, b], "a & b"), (a | b, "a | b")):
        with DAG("consumer", schedule=schedule) as d:
            EmptyOperator(task_id="t")
        assert d.timetable.asset_condition.expression() == expression
        assert d.timetable.description == f"assets: {expression}"
        assert d.next_runs(1) == []  # no runs on time
    with DAG("both", schedule=AssetOrTimeSchedule(timetable="0 6 * * *", assets=[a, b]), timezone="UTC") as d:
        EmptyOperator(task_id="t")
    assert d.timetable.asset_condition.expression() == "a & b"
    assert [t.hour for t in d.next_runs(2)] == [6, 6]


@pytest.mark.parametrize(("schedule", "error", "says"), [
    ([Asset("a"), "b"], InvalidAssetError, "DAG 'bad': asset 'b' is not valid: schedule lists assets"),
    (["0 6 * * *"], ScheduleError, "a list schedule lists assets"),
    ([], ScheduleError, "a list schedule lists assets"),
])
def test_bad_asset_schedules_name_the_dag(schedule: object, error: type, says: str) -> None:
    with pytest.raises(error, match=says) as info:
        DAG("bad", schedule=schedule)
    assert "\n" not in str(info.value)


def test_asset_or_time_schedule_is_checked() -> None:
    with pytest.raises(InvalidAssetError, match="timetable is a time schedule"):
        AssetOrTimeSchedule(timetable=None, assets=Asset("a"))
    with pytest.raises(InvalidAssetError, match="needs an Asset"):
        AssetOrTimeSchedule(timetable="@daily", assets="a")
    with pytest.raises(ScheduleError, match="bad_cron"):
        DAG("bad_cron", schedule=AssetOrTimeSchedule(timetable="61 * * * *", assets=Asset("a")))


def test_outlets_are_checked_where_written() -> None:
    with DAG("outs") as d:
        t = EmptyOperator(task_id="t", outlets=[Asset("a"), Asset("a"), Asset("b")])
        one = EmptyOperator(task_id="one", outlets=Asset("c"))
        none = EmptyOperator(task_id="none")
    assert t.outlets == (Asset("a"), Asset("b")) and one.outlets == (Asset("c"),) and none.outlets is None
    for bad, says in (("s3://x", "outlets is a list of Asset"), ([Asset("a") & Asset("b")], "each outlet is one Asset"),
                      (["a"], "each outlet is one Asset")):
        with pytest.raises(InvalidAssetError, match=says) as info:
            EmptyOperator(task_id="bad", outlets=bad, dag=d)
        assert str(info.value).startswith("DAG 'outs', task 'bad': ")
