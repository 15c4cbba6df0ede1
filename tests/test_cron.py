"""Cron expressions: presets, parsing with errors that name the bad field, iteration against croniter.

Most cases go through :func:`nbflow.timetables.make_timetable`, the way DAGs reach the cron module.
"""

from __future__ import annotations

import pickle
from datetime import datetime, timezone
from itertools import islice
from zoneinfo import ZoneInfo

import pytest

from nbflow import cron as cron_module
from nbflow.cron import PRESETS, Cron, parse_cron
from nbflow.errors import ScheduleError
from nbflow.timetables import CronTimetable, make_timetable, next_runs, parse_date

UTC = timezone.utc
NEW_YORK = ZoneInfo("America/New_York")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def iso(times: list[datetime]) -> list[str]:
    return [t.isoformat() for t in times]


# -- presets ---------------------------------------------------------------------------------------

AFTER = utc("2024-05-05 10:20")  # a Sunday


@pytest.mark.parametrize(
    ("preset", "cron", "expected"),
    [
        ("@hourly", "0 * * * *", "2024-05-05 11:00"),
        ("@daily", "0 0 * * *", "2024-05-06 00:00"),
        ("@midnight", "0 0 * * *", "2024-05-06 00:00"),
        ("@weekly", "0 0 * * 0", "2024-05-12 00:00"),
        ("@monthly", "0 0 1 * *", "2024-06-01 00:00"),
        ("@yearly", "0 0 1 1 *", "2025-01-01 00:00"),
        ("@annually", "0 0 1 1 *", "2025-01-01 00:00"),
    ],
)
def test_presets(preset: str, cron: str, expected: str) -> None:
    timetable = make_timetable(preset, UTC)
    assert isinstance(timetable, CronTimetable)
    assert PRESETS[preset] == cron == timetable.cron
    assert timetable.periodic
    assert timetable.description == f"{preset} (UTC)"
    assert timetable.next_after(AFTER) == utc(expected)


def test_every_preset_is_tested() -> None:
    assert set(PRESETS) == {"@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually"}


@pytest.mark.parametrize(
    "cron",
    [
        "*/7 3-5 * * *",
        "0 0 L * *",
        "15 10 1,15 * MON",
        "0 12 * JAN-MAR/2 *",
        "0 0 29 2 *",
        "5/20 * * * *",
        "0 0 * * 7",
        "0 9-17/3 * * 1-5",
        "0 0 13 * FRI",
        "0 0 1-31 * MON",
        "0 0 */2 * SUN",
        "30 4 1,15 * 5",
        "0 0 ? * *",
        "0 0 * * MON/2",
        "0 0 */5 * 5/2",
        "59/1 23/1 31/1 12/1 6/1",
        "0 0 1-5/2,L * *",
        "0 0 * JAN/3 *",
        "0 0 * * sun-sat/2",
        "0 0 * * 0-7",
    ],
)
def test_wall_clock_sequence_matches_croniter(cron: str) -> None:
    """In UTC (no DST) the runs are exactly croniter's: nbflow iterates, croniter is the reference."""
    from croniter import croniter

    timetable = CronTimetable(cron, UTC)
    start = datetime(2023, 12, 30, 23, 59)
    reference = croniter(cron, start)
    expected = [reference.get_next(datetime) for _ in range(60)]
    got = next_runs(timetable, 60, start.replace(tzinfo=UTC))
    assert [t.replace(tzinfo=None) for t in got] == expected
    backwards = croniter(cron, expected[-1])
    assert [t.replace(tzinfo=None) for t in islice(timetable.iter_before(got[-1]), 59)] == [
        backwards.get_prev(datetime) for _ in range(59)
    ]


# -- bad crons -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "field", "says"),
    [
        ("60 * * * *", "minute", "the minute field '60' is out of range 0-59"),
        ("0 25 * * *", "hour", "the hour field '25' is out of range 0-23"),
        ("0 1,25 * * *", "hour", "the hour field '1,25' has 25, which is out of range 0-23"),
        ("0 0 0 * *", "day-of-month", "the day-of-month field '0' is out of range 1-31"),
        ("0 0 32 * *", "day-of-month", "the day-of-month field '32' is out of range 1-31"),
        ("0 0 * 13 *", "month", "the month field '13' is out of range 1-12"),
        ("0 0 * JANUARY *", "month", "the month field 'JANUARY' is not a number"),
        ("0 0 * * 8", "day-of-week", "the day-of-week field '8' is out of range 0-7"),
        ("0 0 * * FUN", "day-of-week", "the day-of-week field 'FUN' is not a number"),
        ("0 MON * * *", "hour", "only fit the month and day-of-week fields"),
        ("*/0 * * * *", "minute", "the minute field '*/0' has step '0'"),
        ("*/61 * * * *", "minute", "a step must be a whole number from 1 to 60"),
        ("0 5-1 * * *", "hour", "the hour field '5-1' has the range '5-1', which runs backwards"),
        ("0 1,,2 * * *", "hour", "has an empty item in its list"),
        ("x * * * *", "minute", "the minute field 'x' is not a number"),
        ("0 0 * * 5#3", "day-of-week", "'#', 'L') are not supported"),
        ("0 0 ? * *", None, None),  # valid: '?' means any day
        ("0 ? * * *", "hour", "the hour field '?' is not a number"),
        ("0 0 31 2 *", "day-of-month", "the day-of-month field '31' never falls in the month field '2'"),
        ("0 0 30,31 FEB *", "day-of-month", "never falls in the month field 'FEB'"),
    ],
)
def test_bad_cron_names_the_field(cron: str, field: str | None, says: str | None) -> None:
    if says is None:
        make_timetable(cron, UTC)
        return
    with pytest.raises(ScheduleError) as caught:
        make_timetable(cron, UTC, dag_id="sales")
    assert caught.value.field == field
    assert says in str(caught.value)
    assert caught.value.schedule == cron
    assert str(caught.value).startswith("DAG 'sales': ")


@pytest.mark.parametrize(
    ("cron", "says"),
    [
        ("0 6 * *", "it has 4 fields ('0 6 * *'), but a cron needs exactly 5"),
        ("0 0 6 * * *", "6-field crons with a seconds field are not supported"),
        ("0 0 6 * * * 2024", "7-field crons with seconds and years are not supported"),
        ("daily", "it has 1 field ('daily')"),
        ("", "it is empty"),
        ("   ", "it is empty"),
        ("@dialy", "'@dialy' is not a known preset"),
        ("@reboot", "is not a known preset"),
    ],
)
def test_bad_cron_shape(cron: str, says: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        make_timetable(cron, UTC)
    assert says in str(caught.value)
    assert caught.value.field is None


def test_unknown_preset_suggests_the_close_one() -> None:
    with pytest.raises(ScheduleError, match="did you mean '@daily'"):
        make_timetable("@dialy", UTC)


def test_schedule_error_pickles_with_its_field() -> None:
    with pytest.raises(ScheduleError) as caught:
        make_timetable("0 25 * * *", UTC, dag_id="d")
    copy = pickle.loads(pickle.dumps(caught.value))
    assert (copy.field, copy.schedule, str(copy)) == ("hour", "0 25 * * *", str(caught.value))


def test_cron_accepts_names_lists_ranges_and_steps() -> None:
    timetable = make_timetable("0 9,17 * jan-mar mon-fri", NEW_YORK)
    runs = next_runs(timetable, 3, parse_date("2024-01-05T12:00", NEW_YORK))  # a Friday
    assert iso(runs) == ["2024-01-05T17:00:00-05:00", "2024-01-08T09:00:00-05:00", "2024-01-08T17:00:00-05:00"]


def test_parse_cron_resolves_presets_and_whitespace() -> None:
    parsed = parse_cron("  @DAILY ")
    assert isinstance(parsed, Cron)
    assert parsed.expression == "0 0 * * *" and parsed == parse_cron("0  0 * * *")
    assert parsed.hours == (0,) and not parsed.steps_hours
    assert parse_cron("*/15 * * * *").steps_hours
    with pytest.raises(ScheduleError) as caught:
        parse_cron(["0 6 * * *"], dag_id="sales")  # type: ignore[arg-type]
    assert "a cron expression must be a string" in str(caught.value)


def test_the_timetables_module_reexports_the_presets() -> None:
    from nbflow import timetables

    assert timetables.PRESETS is cron_module.PRESETS
