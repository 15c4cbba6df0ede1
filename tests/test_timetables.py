"""Timetables: cron in real zones and DST, data intervals, date edges, bad input (parsing: test_cron.py).

Instants are compared in UTC (or as ISO strings with their offset): Python compares two datetimes
that share a tzinfo by wall clock, which would hide exactly the DST mistakes these tests look for.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from nbflow.errors import InvalidDateError, ScheduleError, TimezoneError
from nbflow.timetables import (
    CronTimetable,
    DeltaTimetable,
    NullTimetable,
    OnceTimetable,
    Timetable,
    dst_change_between,
    local_timezone,
    make_timetable,
    next_runs,
    parse_date,
    resolve_timezone,
    scheduled_times,
    timezone_name,
    utcnow,
)

UTC = timezone.utc
NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
SEOUL = ZoneInfo("Asia/Seoul")
ROOT = Path(__file__).resolve().parents[1]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def iso(times: list[datetime]) -> list[str]:
    return [t.isoformat() for t in times]


def in_utc(times: list[datetime]) -> list[datetime]:
    return [t.astimezone(UTC) for t in times]


def as_utc(value: datetime | None) -> datetime | None:
    # PEP 495: a datetime inside a fall-back overlap never compares equal to one in another zone
    return value.astimezone(UTC) if value is not None else None


def local_day(tz: ZoneInfo, day: str) -> tuple[datetime, datetime]:
    """The first and last instant of a local calendar day, as aware datetimes."""
    start = parse_date(day, tz)
    return start, parse_date(date.fromisoformat(day) + timedelta(days=1), tz) - timedelta(microseconds=1)


def test_description_names_expression_and_zone() -> None:
    assert make_timetable("0 6 * * *", SEOUL).description == "0 6 * * * (Asia/Seoul)"
    assert make_timetable(timedelta(minutes=30), SEOUL, parse_date("2024-01-01", SEOUL)).description == "every 0:30:00"
    assert make_timetable("@once", SEOUL).description == "@once"
    assert make_timetable(None, SEOUL).description == "manual"


# -- DST: exact instants ---------------------------------------------------------------------------

# (zone, cron, local day, runs on that local day, every run from local 00:00 to 04:00 that day)
DST_CASES = [
    # America/New_York: 02:00 EST -> 03:00 EDT on 2024-03-10; 02:00 EDT -> 01:00 EST on 2024-11-03
    (NEW_YORK, "0 * * * *", "2024-03-10", 23,
     ["00:00-05:00", "01:00-05:00", "03:00-04:00", "04:00-04:00"]),
    (NEW_YORK, "0 * * * *", "2024-11-03", 25,
     ["00:00-04:00", "01:00-04:00", "01:00-05:00", "02:00-05:00", "03:00-05:00", "04:00-05:00"]),
    (NEW_YORK, "*/30 * * * *", "2024-03-10", 46,
     ["00:00-05:00", "00:30-05:00", "01:00-05:00", "01:30-05:00", "03:00-04:00", "03:30-04:00", "04:00-04:00"]),
    (NEW_YORK, "*/30 * * * *", "2024-11-03", 50,
     ["00:00-04:00", "00:30-04:00", "01:00-04:00", "01:30-04:00", "01:00-05:00", "01:30-05:00",
      "02:00-05:00", "02:30-05:00", "03:00-05:00", "03:30-05:00", "04:00-05:00"]),
    (NEW_YORK, "*/15 * * * *", "2024-03-10", 92,
     ["00:00-05:00", "00:15-05:00", "00:30-05:00", "00:45-05:00", "01:00-05:00", "01:15-05:00",
      "01:30-05:00", "01:45-05:00", "03:00-04:00", "03:15-04:00", "03:30-04:00", "03:45-04:00",
      "04:00-04:00"]),
    (NEW_YORK, "*/15 * * * *", "2024-11-03", 100,
     ["00:00-04:00", "00:15-04:00", "00:30-04:00", "00:45-04:00", "01:00-04:00", "01:15-04:00",
      "01:30-04:00", "01:45-04:00", "01:00-05:00", "01:15-05:00", "01:30-05:00", "01:45-05:00",
      "02:00-05:00", "02:15-05:00", "02:30-05:00", "02:45-05:00", "03:00-05:00", "03:15-05:00",
      "03:30-05:00", "03:45-05:00", "04:00-05:00"]),
    (NEW_YORK, "30 2 * * *", "2024-03-10", 1, ["03:00-04:00"]),    # inside the gap: at the jump
    (NEW_YORK, "30 2 * * *", "2024-11-03", 1, ["02:30-05:00"]),
    (NEW_YORK, "30 1 * * *", "2024-11-03", 1, ["01:30-04:00"]),    # inside the overlap: first reading
    (NEW_YORK, "30 1 * * *", "2024-03-10", 1, ["01:30-05:00"]),
    (NEW_YORK, "0 6 * * *", "2024-03-10", 1, []),                 # outside: plain wall clock
    (NEW_YORK, "*/15 2 * * *", "2024-03-10", 1, ["03:00-04:00"]),  # all four skipped times: once
    (NEW_YORK, "0 2,3 * * *", "2024-03-10", 1, ["03:00-04:00"]),   # skipped 02:00 and 03:00 coincide
    (NEW_YORK, "0 */2 * * *", "2024-03-10", 11, ["00:00-05:00", "04:00-04:00"]),
    (NEW_YORK, "0 */2 * * *", "2024-11-03", 12, ["00:00-04:00", "02:00-05:00", "04:00-05:00"]),
    # Europe/Berlin: 02:00 CET -> 03:00 CEST on 2024-03-31; 03:00 CEST -> 02:00 CET on 2024-10-27
    (BERLIN, "0 * * * *", "2024-03-31", 23,
     ["00:00+01:00", "01:00+01:00", "03:00+02:00", "04:00+02:00"]),
    (BERLIN, "0 * * * *", "2024-10-27", 25,
     ["00:00+02:00", "01:00+02:00", "02:00+02:00", "02:00+01:00", "03:00+01:00", "04:00+01:00"]),
    (BERLIN, "*/30 * * * *", "2024-03-31", 46,
     ["00:00+01:00", "00:30+01:00", "01:00+01:00", "01:30+01:00", "03:00+02:00", "03:30+02:00",
      "04:00+02:00"]),
    (BERLIN, "*/30 * * * *", "2024-10-27", 50,
     ["00:00+02:00", "00:30+02:00", "01:00+02:00", "01:30+02:00", "02:00+02:00", "02:30+02:00",
      "02:00+01:00", "02:30+01:00", "03:00+01:00", "03:30+01:00", "04:00+01:00"]),
    (BERLIN, "*/15 * * * *", "2024-03-31", 92, None),
    (BERLIN, "*/15 * * * *", "2024-10-27", 100, None),
    (BERLIN, "30 2 * * *", "2024-03-31", 1, ["03:00+02:00"]),
    (BERLIN, "30 2 * * *", "2024-10-27", 1, ["02:30+02:00"]),
    (BERLIN, "0 3 * * *", "2024-10-27", 1, ["03:00+01:00"]),
    (BERLIN, "0 6 * * *", "2024-03-31", 1, []),
    # Australia/Lord_Howe, a 30-minute shift: 02:00 +11 -> 01:30 +10:30 on 2024-04-07;
    # 02:00 +10:30 -> 02:30 +11 on 2024-10-06
    (LORD_HOWE, "0 * * * *", "2024-10-06", 23,
     ["00:00+10:30", "01:00+10:30", "03:00+11:00", "04:00+11:00"]),
    (LORD_HOWE, "0 * * * *", "2024-04-07", 24,
     ["00:00+11:00", "01:00+11:00", "02:00+10:30", "03:00+10:30", "04:00+10:30"]),
    (LORD_HOWE, "*/30 * * * *", "2024-10-06", 47,
     ["00:00+10:30", "00:30+10:30", "01:00+10:30", "01:30+10:30", "02:30+11:00", "03:00+11:00",
      "03:30+11:00", "04:00+11:00"]),
    (LORD_HOWE, "*/30 * * * *", "2024-04-07", 49,
     ["00:00+11:00", "00:30+11:00", "01:00+11:00", "01:30+11:00", "01:30+10:30", "02:00+10:30",
      "02:30+10:30", "03:00+10:30", "03:30+10:30", "04:00+10:30"]),
    (LORD_HOWE, "*/15 * * * *", "2024-10-06", 94, None),
    (LORD_HOWE, "*/15 * * * *", "2024-04-07", 98, None),
    (LORD_HOWE, "15 2 * * *", "2024-10-06", 1, ["02:30+11:00"]),
    (LORD_HOWE, "45 1 * * *", "2024-04-07", 1, ["01:45+11:00"]),
    (LORD_HOWE, "*/15 2 * * *", "2024-10-06", 2, ["02:30+11:00", "02:45+11:00"]),
    (LORD_HOWE, "0 6 * * *", "2024-04-07", 1, []),
    # Asia/Seoul: no DST
    (SEOUL, "0 * * * *", "2024-03-10", 24, ["00:00+09:00", "01:00+09:00", "02:00+09:00", "03:00+09:00", "04:00+09:00"]),
    (SEOUL, "*/15 * * * *", "2024-11-03", 96, None),
    (SEOUL, "*/30 * * * *", "2024-03-31", 48, None),
    (SEOUL, "30 2 * * *", "2024-03-10", 1, ["02:30+09:00"]),
]


def _case_id(case: tuple) -> str:
    return f"{case[0].key}|{case[1]}|{case[2]}"


@pytest.mark.parametrize(("tz", "cron", "day", "count", "early"), DST_CASES, ids=[_case_id(c) for c in DST_CASES])
def test_dst_runs_per_local_day_and_exact_instants(
    tz: ZoneInfo, cron: str, day: str, count: int, early: list[str] | None
) -> None:
    timetable = CronTimetable(cron, tz)
    first, last = local_day(tz, day)
    runs = scheduled_times(timetable, first, last)
    assert len(runs) == count
    assert all(run.tzinfo is tz for run in runs)
    assert {run.date() for run in runs} == {date.fromisoformat(day)}
    utc_runs = in_utc(runs)
    assert utc_runs == sorted(set(utc_runs)), "runs must be distinct instants in order"
    # every instant round-trips: what is shown is the real instant
    assert all(run.astimezone(UTC).astimezone(tz).isoformat() == run.isoformat() for run in runs)
    if early is not None:
        until = parse_date(f"{day}T04:00", tz)
        shown = [run.isoformat()[11:16] + run.isoformat()[-6:] for run in runs if run.astimezone(UTC) <= until]
        assert shown == early


@pytest.mark.parametrize(("tz", "cron", "day", "count", "early"), DST_CASES, ids=[_case_id(c) for c in DST_CASES])
def test_dst_next_and_previous_agree_with_the_list(
    tz: ZoneInfo, cron: str, day: str, count: int, early: list[str] | None
) -> None:
    """From any instant around the change, next/previous land on the neighbouring runs of the list."""
    timetable = CronTimetable(cron, tz)
    first, _ = local_day(tz, day)
    start, end = first - timedelta(days=1), first + timedelta(days=3)
    runs = in_utc(scheduled_times(timetable, start, end))
    probe = first.astimezone(UTC) - timedelta(hours=3)
    stop = first.astimezone(UTC) + timedelta(hours=30)
    probes = []
    while probe < stop:
        probes.append(probe)
        probe += timedelta(minutes=7)
    probes += runs[1:-1]  # exactly on a run: strictly after / strictly before skip it
    for point in probes:
        expected_next = min(t for t in runs if t > point)
        expected_prev = max(t for t in runs if t < point)
        assert as_utc(timetable.next_after(point)) == expected_next, point
        assert as_utc(timetable.previous_before(point)) == expected_prev, point
        latest = timetable.latest_at_or_before(point)
        assert as_utc(latest) == max(t for t in runs if t <= point), point
    for before, after in zip(runs, runs[1:]):
        assert in_utc(list(timetable.data_interval(after.astimezone(tz)))) == [before, after]


def test_hourly_year_counts_every_real_hour() -> None:
    timetable = CronTimetable("0 * * * *", NEW_YORK)
    runs = scheduled_times(timetable, parse_date("2024-01-01", NEW_YORK), parse_date("2024-12-31T23:59", NEW_YORK))
    assert len(runs) == 366 * 24
    gaps = {b - a for a, b in zip(in_utc(runs), in_utc(runs[1:]))}
    assert gaps == {timedelta(hours=1)}
    per_day = Counter(run.date() for run in runs)
    assert per_day[date(2024, 3, 10)] == 23 and per_day[date(2024, 11, 3)] == 25
    assert set(per_day.values()) == {23, 24, 25}


def test_daily_fixed_hour_runs_once_per_local_day_through_a_year() -> None:
    timetable = CronTimetable("30 2 * * *", NEW_YORK)
    runs = scheduled_times(timetable, parse_date("2024-01-01", NEW_YORK), parse_date("2024-12-31T23:59", NEW_YORK))
    assert len(runs) == 366
    assert len({run.date() for run in runs}) == 366
    assert Counter((run.hour, run.minute) for run in runs) == {(2, 30): 365, (3, 0): 1}


def test_fixed_hour_in_the_overlap_skips_the_second_reading() -> None:
    timetable = CronTimetable("30 1 * * *", NEW_YORK)
    first_reading = utc("2024-11-03 05:30")  # 01:30 EDT
    second_reading = utc("2024-11-03 06:30")  # 01:30 EST
    assert as_utc(timetable.next_after(first_reading - timedelta(minutes=1))) == first_reading
    assert as_utc(timetable.next_after(first_reading)) == utc("2024-11-04 06:30")
    assert as_utc(timetable.next_after(second_reading - timedelta(minutes=1))) == utc("2024-11-04 06:30")
    assert as_utc(timetable.previous_before(second_reading)) == first_reading
    assert as_utc(timetable.latest_at_or_before(second_reading)) == first_reading


def test_elapsed_from_inside_the_overlap() -> None:
    timetable = CronTimetable("0 * * * *", NEW_YORK)
    in_first = utc("2024-11-03 05:20")  # 01:20 EDT
    in_second = utc("2024-11-03 06:20")  # 01:20 EST
    assert as_utc(timetable.next_after(in_first)) == utc("2024-11-03 06:00")  # 01:00 EST
    assert timetable.next_after(in_first).fold == 1
    assert as_utc(timetable.next_after(in_second)) == utc("2024-11-03 07:00")  # 02:00 EST
    assert as_utc(timetable.previous_before(in_second)) == utc("2024-11-03 06:00")
    assert as_utc(timetable.previous_before(in_first)) == utc("2024-11-03 05:00")


# -- data intervals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "tz", "logical", "expected_start"),
    [
        ("0 6 * * *", SEOUL, "2024-01-02T06:00:00+09:00", "2024-01-01T06:00:00+09:00"),
        ("@daily", UTC, "2024-03-01T00:00:00+00:00", "2024-02-29T00:00:00+00:00"),
        ("@monthly", UTC, "2024-03-01T00:00:00+00:00", "2024-02-01T00:00:00+00:00"),
        ("0 * * * *", NEW_YORK, "2024-03-10T03:00:00-04:00", "2024-03-10T01:00:00-05:00"),
        ("0 * * * *", NEW_YORK, "2024-11-03T01:00:00-05:00", "2024-11-03T01:00:00-04:00"),
        ("30 2 * * *", NEW_YORK, "2024-03-11T02:30:00-04:00", "2024-03-10T03:00:00-04:00"),
        ("30 2 * * *", NEW_YORK, "2024-03-10T03:00:00-04:00", "2024-03-09T02:30:00-05:00"),
        ("0 9 * * 1-5", BERLIN, "2024-04-01T09:00:00+02:00", "2024-03-29T09:00:00+01:00"),
    ],
)
def test_cron_data_interval(schedule: str, tz: ZoneInfo, logical: str, expected_start: str) -> None:
    timetable = make_timetable(schedule, tz)
    start, end = timetable.data_interval(datetime.fromisoformat(logical))
    assert (start.isoformat(), end.isoformat()) == (expected_start, logical)
    assert start.tzinfo is tz and end.tzinfo is tz


def test_non_periodic_and_delta_data_intervals() -> None:
    logical = parse_date("2024-03-10T12:00", NEW_YORK)
    once = make_timetable("@once", NEW_YORK, logical)
    assert not once.periodic and once.data_interval(logical) == (logical, logical)
    manual = make_timetable(None, NEW_YORK)
    assert not manual.periodic and manual.data_interval(logical) == (logical, logical)
    anchor = parse_date("2024-03-09T12:00", NEW_YORK)
    delta = make_timetable(timedelta(hours=6), NEW_YORK, anchor)
    on_lattice = anchor.astimezone(UTC) + 4 * timedelta(hours=6)  # across the spring change: 13:00 EDT
    assert in_utc(list(delta.data_interval(on_lattice))) == [
        utc("2024-03-10 11:00"), utc("2024-03-10 17:00")]


# -- start and end dates ---------------------------------------------------------------------------


def test_start_date_on_a_scheduled_time_is_included_and_end_date_too() -> None:
    timetable = CronTimetable("0 6 * * *", SEOUL)
    start_date = parse_date("2024-01-01T06:00", SEOUL)
    end_date = parse_date("2024-01-05T06:00", SEOUL)
    window = (parse_date("2023-12-01", SEOUL), parse_date("2024-02-01", SEOUL))
    runs = scheduled_times(timetable, *window, start_date=start_date, end_date=end_date)
    assert [run.day for run in runs] == [1, 2, 3, 4, 5]
    tick = timedelta(microseconds=1)
    later = scheduled_times(timetable, *window, start_date=start_date + tick, end_date=end_date - tick)
    assert [run.day for run in later] == [2, 3, 4]


def test_scheduled_times_window_is_inclusive_at_both_ends() -> None:
    timetable = CronTimetable("0 * * * *", UTC)
    runs = scheduled_times(timetable, utc("2024-01-01 00:00"), utc("2024-01-01 03:00"))
    assert in_utc(runs) == [utc(f"2024-01-01 0{h}:00") for h in range(4)]
    assert scheduled_times(timetable, utc("2024-01-01 00:01"), utc("2024-01-01 00:59")) == []
    assert scheduled_times(timetable, utc("2024-01-02"), utc("2024-01-01")) == []


def test_start_date_off_schedule_starts_at_the_next_time() -> None:
    timetable = CronTimetable("0 6 * * *", SEOUL)
    runs = next_runs(timetable, 2, utc("2023-01-01 00:00"), start_date=parse_date("2024-01-01T06:01", SEOUL))
    assert iso(runs) == ["2024-01-02T06:00:00+09:00", "2024-01-03T06:00:00+09:00"]


def test_next_runs_edges() -> None:
    timetable = CronTimetable("0 6 * * *", SEOUL)
    start_date = parse_date("2024-01-01T06:00", SEOUL)
    assert iso(next_runs(timetable, 2, parse_date("2023-06-01", SEOUL), start_date=start_date)) == [
        "2024-01-01T06:00:00+09:00", "2024-01-02T06:00:00+09:00"]
    # strictly after `after`, even when `after` is a scheduled time
    assert iso(next_runs(timetable, 1, start_date, start_date=start_date)) == ["2024-01-02T06:00:00+09:00"]
    # end_date is the last possible run
    ends = next_runs(timetable, 10, start_date, end_date=parse_date("2024-01-03T06:00", SEOUL))
    assert iso(ends) == ["2024-01-02T06:00:00+09:00", "2024-01-03T06:00:00+09:00"]
    assert next_runs(timetable, 0, start_date) == []


def test_next_runs_defaults_to_now() -> None:
    timetable = CronTimetable("* * * * *", UTC)
    before = utcnow()
    (run,) = next_runs(timetable, 1)
    assert before < run <= utcnow() + timedelta(minutes=1)
    assert utcnow().tzinfo is UTC


# -- bad schedules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "says"),
    [
        (5, "a schedule cannot be a int"),
        (timedelta(0), "must be longer than zero"),
        (timedelta(hours=-1), "must be longer than zero"),
        (timedelta(hours=1), "needs a start_date"),
    ],
)
def test_bad_schedule_values(schedule: object, says: str) -> None:
    with pytest.raises(ScheduleError, match=says):
        make_timetable(schedule, UTC)


def test_a_bad_cron_in_python_names_every_kind_of_schedule_python_takes() -> None:
    with pytest.raises(ScheduleError) as caught:
        make_timetable("61 * * * *", UTC)
    assert caught.value.field == "minute" and caught.value.problem
    assert "a timedelta, or None" in str(caught.value)  # the Python API takes those (the Lab dialog does not)


# -- time zones ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "", "America", "Europe/Berlin/", "../etc/passwd", 42])
def test_unknown_time_zone(name: object) -> None:
    with pytest.raises(TimezoneError) as caught:
        resolve_timezone(name, dag_id="sales")  # type: ignore[arg-type]
    assert caught.value.name == name
    assert "DAG 'sales'" in str(caught.value)


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("Asia/Seoul", "Asia/Seoul"),
        (" Europe/Berlin ", "Europe/Berlin"),
        ("UTC", "UTC"),
        ("utc", "UTC"),
        (ZoneInfo("Australia/Lord_Howe"), "Australia/Lord_Howe"),
        (timezone.utc, "UTC"),
        (timezone(timedelta(hours=2)), "UTC+02:00"),
    ],
)
def test_resolve_timezone(value: object, name: str) -> None:
    tz = resolve_timezone(value)  # type: ignore[arg-type]
    assert timezone_name(tz) == name
    if not isinstance(value, str):
        assert tz is value


@pytest.mark.parametrize(
    ("tz_env", "name"),
    [
        ("Asia/Seoul", "Asia/Seoul"),
        (":Europe/Berlin", "Europe/Berlin"),
        ("/usr/share/zoneinfo/America/New_York", "America/New_York"),
    ],
)
def test_local_timezone_from_tz(monkeypatch: pytest.MonkeyPatch, tz_env: str, name: str) -> None:
    monkeypatch.setenv("TZ", tz_env)
    assert timezone_name(local_timezone()) == name
    assert timezone_name(resolve_timezone(None)) == name


def test_local_timezone_falls_back_to_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TZ", raising=False)
    machine = local_timezone()
    assert isinstance(machine, ZoneInfo)
    monkeypatch.setenv("TZ", "Not/A_Zone")
    assert local_timezone() == machine


def test_cron_is_evaluated_in_the_dag_zone() -> None:
    runs = next_runs(CronTimetable("0 6 * * *", SEOUL), 1, utc("2023-12-31 12:00"))
    assert iso(runs) == ["2024-01-01T06:00:00+09:00"]
    assert in_utc(runs) == [utc("2023-12-31 21:00")]


# -- dates -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "tz", "expected"),
    [
        ("2024-01-31", SEOUL, "2024-01-31T00:00:00+09:00"),
        ("2024-01-31T06:00", SEOUL, "2024-01-31T06:00:00+09:00"),
        ("2024-01-31 06:00", SEOUL, "2024-01-31T06:00:00+09:00"),
        (" 2024-01-31T06:00:30 ", SEOUL, "2024-01-31T06:00:30+09:00"),
        ("2024-01-31T06:00+00:00", SEOUL, "2024-01-31T15:00:00+09:00"),
        ("2024-01-31T06:00Z", SEOUL, "2024-01-31T15:00:00+09:00"),
        (date(2024, 1, 31), BERLIN, "2024-01-31T00:00:00+01:00"),
        (datetime(2024, 7, 1, 8), BERLIN, "2024-07-01T08:00:00+02:00"),
        (datetime(2024, 7, 1, 8, tzinfo=UTC), BERLIN, "2024-07-01T10:00:00+02:00"),
        # naive times in a DST change: a repeated time is its first reading, a skipped one the jump
        ("2024-11-03T01:30", NEW_YORK, "2024-11-03T01:30:00-04:00"),
        ("2024-03-10T02:30", NEW_YORK, "2024-03-10T03:00:00-04:00"),
        (datetime(2024, 11, 3, 1, 30, fold=1), NEW_YORK, "2024-11-03T01:30:00-04:00"),
    ],
)
def test_parse_date(value: object, tz: ZoneInfo, expected: str) -> None:
    parsed = parse_date(value, tz)
    assert parsed.isoformat() == expected
    assert parsed.tzinfo is tz


@pytest.mark.parametrize("value", ["", "yesterday", "2024-13-01", "2024-02-30", "31/01/2024", 20240131, None, True, [2024]])
def test_parse_date_failures(value: object) -> None:
    with pytest.raises(InvalidDateError) as caught:
        parse_date(value, UTC, field="start_date", dag_id="sales", task_id="extract")
    assert (caught.value.field, caught.value.value) == ("start_date", value)
    assert str(caught.value).startswith("DAG 'sales', task 'extract': start_date=")


@pytest.mark.parametrize(
    ("a", "b", "change"),
    [
        ("2024-03-09T12:00-05:00", "2024-03-10T12:00-04:00", timedelta(hours=1)),
        ("2024-11-02T12:00-04:00", "2024-11-03T12:00-05:00", timedelta(hours=-1)),
        ("2024-01-01T00:00-05:00", "2024-02-01T00:00-05:00", None),
        ("2024-01-01T00:00-05:00", "2025-01-01T00:00-05:00", None),  # two changes cancel out
    ],
)
def test_dst_change_between(a: str, b: str, change: timedelta | None) -> None:
    assert dst_change_between(NEW_YORK, datetime.fromisoformat(a), datetime.fromisoformat(b)) == change


def test_dst_change_between_half_hour_zone() -> None:
    a, b = parse_date("2024-10-05T12:00", LORD_HOWE), parse_date("2024-10-06T12:00", LORD_HOWE)
    assert dst_change_between(LORD_HOWE, a, b) == timedelta(minutes=30)


# -- timedelta, @once, None ------------------------------------------------------------------------


def test_timedelta_schedule_keeps_elapsed_time_across_dst() -> None:
    anchor = parse_date("2024-03-08T06:00", NEW_YORK)
    timetable = make_timetable(timedelta(days=1), NEW_YORK, anchor)
    assert isinstance(timetable, DeltaTimetable)
    runs = scheduled_times(timetable, anchor, parse_date("2024-03-12T12:00", NEW_YORK))
    assert iso(runs) == [
        "2024-03-08T06:00:00-05:00",
        "2024-03-09T06:00:00-05:00",
        "2024-03-10T07:00:00-04:00",
        "2024-03-11T07:00:00-04:00",
        "2024-03-12T07:00:00-04:00",
    ]


def test_timedelta_schedule_in_the_overlap() -> None:
    anchor = parse_date("2024-11-03T00:00", NEW_YORK)
    timetable = DeltaTimetable(timedelta(minutes=30), NEW_YORK, anchor)
    runs = scheduled_times(timetable, anchor, parse_date("2024-11-03T02:00", NEW_YORK))
    assert iso(runs) == [
        "2024-11-03T00:00:00-04:00", "2024-11-03T00:30:00-04:00", "2024-11-03T01:00:00-04:00",
        "2024-11-03T01:30:00-04:00", "2024-11-03T01:00:00-05:00", "2024-11-03T01:30:00-05:00",
        "2024-11-03T02:00:00-05:00",
    ]
    assert timetable.description == "every 0:30:00"


@pytest.mark.parametrize(
    ("point", "next_", "previous"),
    [
        ("2024-01-01T06:00", "2024-01-01T06:45", "2024-01-01T05:15"),
        ("2024-01-01T06:10", "2024-01-01T06:45", "2024-01-01T06:00"),
        ("2023-12-31T23:00", "2023-12-31T23:15", "2023-12-31T22:30"),  # the lattice also runs backwards
    ],
)
def test_timedelta_next_and_previous(point: str, next_: str, previous: str) -> None:
    timetable = DeltaTimetable(timedelta(minutes=45), UTC, utc("2024-01-01 00:00"))
    assert timetable.next_after(utc(point)) == utc(next_)
    assert timetable.previous_before(utc(point)) == utc(previous)
    assert timetable.latest_at_or_before(utc("2024-01-01 06:00")) == utc("2024-01-01 06:00")


def test_once() -> None:
    start = parse_date("2024-05-01T09:00", BERLIN)
    timetable = make_timetable("@once", BERLIN, start)
    assert isinstance(timetable, OnceTimetable) and not timetable.periodic
    assert timetable.next_after(start - timedelta(seconds=1)) == start
    assert timetable.next_after(start) is None
    assert timetable.previous_before(start) is None
    assert timetable.latest_at_or_before(start) == start
    assert scheduled_times(timetable, parse_date("2024-01-01", BERLIN), parse_date("2024-12-31", BERLIN)) == [start]
    assert scheduled_times(timetable, start + timedelta(seconds=1), parse_date("2024-12-31", BERLIN)) == []
    assert next_runs(timetable, 5, parse_date("2024-01-01", BERLIN)) == [start]
    assert make_timetable("@once", BERLIN).next_after(start) is None  # no start_date: nothing to run


@pytest.mark.parametrize("schedule", [None, "None"])
def test_none_is_manual_only(schedule: object) -> None:
    timetable = make_timetable(schedule, SEOUL)
    assert isinstance(timetable, NullTimetable) and not timetable.periodic
    assert timetable.next_after(utc("2024-01-01 00:00")) is None
    assert timetable.previous_before(utc("2024-01-01 00:00")) is None
    assert next_runs(timetable, 3, utc("2024-01-01 00:00")) == []
    assert scheduled_times(timetable, utc("2024-01-01 00:00"), utc("2025-01-01 00:00")) == []


def test_timetable_passes_through_and_compares() -> None:
    timetable = CronTimetable("0 6 * * *", SEOUL)
    assert make_timetable(timetable, UTC) is timetable
    assert timetable == CronTimetable("0  6 * * *", ZoneInfo("Asia/Seoul"))
    assert timetable != CronTimetable("0 6 * * *", BERLIN)
    assert make_timetable("@daily", UTC) == make_timetable("0 0 * * *", UTC)
    assert isinstance(timetable, Timetable)
    copy = pickle.loads(pickle.dumps(timetable))
    assert copy == timetable and copy.next_after(utc("2024-01-01 00:00")) == utc("2024-01-01 21:00")


def test_naive_inputs_are_wall_clock_in_the_zone() -> None:
    timetable = CronTimetable("0 6 * * *", SEOUL)
    assert timetable.next_after(datetime(2024, 1, 1, 5, 0)) == utc("2023-12-31 21:00")


# -- cost ------------------------------------------------------------------------------------------


def test_croniter_is_imported_only_for_cron_schedules() -> None:
    code = (
        "import sys; from datetime import timedelta; import nbflow.timetables as t;"
        "tz = t.resolve_timezone('Asia/Seoul'); s = t.parse_date('2024-01-01', tz);"
        "t.make_timetable(None, tz); t.make_timetable('@once', tz, s);"
        "t.next_runs(t.make_timetable(timedelta(hours=1), tz, s), 3, s);"
        "assert 'croniter' not in sys.modules, 'croniter imported';"
        "t.make_timetable('0 6 * * *', tz); assert 'croniter' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_distinct_expressions_and_a_year_of_hourly_runs() -> None:
    # how fast this is lives in benchmarks/scheduling.py (the catchup plan), not in a timed test
    for minute in range(60):  # distinct expressions: nothing cached
        upcoming = CronTimetable(f"{minute} 6 * * 1-5", BERLIN).next_after(utc("2024-03-30 12:00"))
        assert upcoming == datetime(2024, 4, 1, 6, minute, tzinfo=BERLIN)
    timetable = CronTimetable("0 * * * *", NEW_YORK)
    runs = scheduled_times(timetable, parse_date("2024-01-01", NEW_YORK), parse_date("2024-12-31T23:59", NEW_YORK))
    assert len(runs) == 8784


# -- pendulum values are read as the stdlib datetimes they stand for --------------------------------


def test_pendulum_start_date_with_a_timedelta_schedule_and_a_pendulum_zone(nbflow_home) -> None:
    import pendulum

    from nbflow import DAG
    from nbflow.operators import BashOperator

    with DAG("pend", schedule=timedelta(hours=6), start_date=pendulum.datetime(2024, 1, 1, tz="Europe/Paris"),
             end_date=pendulum.datetime(2024, 1, 3, tz="Europe/Paris")) as d:
        BashOperator(task_id="echo", bash_command="echo {{ ts }}")
    assert type(d.timezone) is ZoneInfo and d.timezone.key == "Europe/Paris"
    assert type(d.start_date) is datetime
    assert d.next_runs(2, after=pendulum.datetime(2024, 1, 2, tz="UTC")) == [
        datetime(2024, 1, 2, 6, tzinfo=ZoneInfo("Europe/Paris")), datetime(2024, 1, 2, 12, tzinfo=ZoneInfo("Europe/Paris"))]
    run = d.test(logical_date=pendulum.datetime(2024, 1, 2, 5, tz="UTC"))
    assert run.state == "success" and run.outputs["echo"] == "2024-01-02T06:00:00+01:00"
    runs = d.backfill(pendulum.datetime(2024, 1, 2, tz="Europe/Paris"), pendulum.datetime(2024, 1, 2, 12, tz="Europe/Paris"))
    assert [r.logical_date.hour for r in runs] == [0, 6, 12]

    with DAG("pend_zone", schedule=pendulum.duration(days=1), start_date=pendulum.datetime(2024, 1, 1),
             timezone=pendulum.timezone("Asia/Seoul")) as seoul:
        pass
    assert type(seoul.timezone) is ZoneInfo and seoul.start_date == datetime(2024, 1, 1, tzinfo=UTC)
    assert seoul.next_runs(1, after="2024-01-03") == [datetime(2024, 1, 3, 9, tzinfo=ZoneInfo("Asia/Seoul"))]
    with pytest.raises(ScheduleError, match="months or years has no fixed length"):
        DAG("pend_month", schedule=pendulum.duration(months=1), start_date="2024-01-01")
