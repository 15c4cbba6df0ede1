"""Schedules in plain English: a table of crons and their sentences, schedule values, bad input.

Beside the table, a few sentences are checked against the times the cron module actually walks, so
the words and the runs cannot drift apart.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from itertools import takewhile
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from nbflow.cron import PRESETS, parse_cron
from nbflow.cronwords import describe_cron, describe_schedule
from nbflow.errors import ScheduleError
from nbflow.timetables import Timetable, make_timetable, parse_date

SEOUL = ZoneInfo("Asia/Seoul")


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        # the examples users should read
        ("0 6 * * *", "at 06:00 every day"),
        ("30 7 * * 1-5", "at 07:30, Monday to Friday"),
        ("*/15 * * * *", "every 15 minutes"),
        ("0 * * * *", "every hour, on the hour"),
        ("5 * * * *", "every hour at minute 5"),
        ("0 */2 * * *", "every 2 hours, on the hour"),
        ("0 9,17 * * *", "at 09:00 and 17:00 every day"),
        ("0 0 1 * *", "at 00:00 on day 1 of every month"),
        ("0 0 1 1 *", "at 00:00 on January 1"),
        ("0 8 * * 0", "at 08:00 on Sunday"),
        ("0 8 * * 6,0", "at 08:00 on Saturday and Sunday"),
        ("* * * * *", "every minute"),
        ("0 12 1,15 * *", "at 12:00 on days 1 and 15 of every month"),
        ("0 6 * 1-3 *", "at 06:00 every day in January to March"),
        # minutes: steps, offsets, lists that are steps, irregular lists
        ("5/15 * * * *", "every 15 minutes at 5, 20, 35 and 50 past the hour"),
        ("0,10,20,30,40,50 * * * *", "every 10 minutes"),
        ("*/7 * * * *", "every hour at minutes 0, 7, 14, ..., 56"),  # 56 to 0 is 4 minutes, not 7
        ("1-5 * * * *", "every hour at minutes 1-5"),
        ("3,17,44 * * * *", "every hour at minutes 3, 17 and 44"),
        ("* 9 * * *", "every minute from 09:00 to 09:59"),
        ("*/15 9-17 * * 1-5", "every 15 minutes from 09:00 to 17:45, Monday to Friday"),
        ("0,30 9 * * *", "at 09:00 and 09:30 every day"),
        ("0,30 9,17 * * *", "at 09:00, 09:30, 17:00 and 17:30 every day"),
        # hours: steps, offsets, ranges, lists
        ("30 */2 * * *", "every 2 hours at minute 30"),
        ("0 */12 * * *", "every 12 hours, on the hour"),
        ("0 1/2 * * *", "every 2 hours from 01:00 to 23:00"),
        ("0 8-18/2 * * *", "every 2 hours from 08:00 to 18:00"),
        ("0 */5 * * *", "every 5 hours from 00:00 to 20:00"),  # 20:00 to 00:00 is 4 hours
        ("0 9-17 * * *", "every hour from 09:00 to 17:00"),
        ("0 0,12 * * *", "at 00:00 and 12:00 every day"),
        ("0 0,6,12,18 * * *", "at 00:00, 06:00, 12:00 and 18:00 every day"),
        ("0 0,3,6,9,12,15,18,21 * * *", "every 3 hours, on the hour"),
        # too irregular for a short phrase: the fields, value by value
        ("3,17,44 1-5 * * *", "at minutes 3, 17 and 44 past hours 1-5 every day"),
        ("0 1,3,4,8,9,10,11,15 * * *", "at minute 0 past hours 1, 3, 4, 8-11 and 15 every day"),
        ("*/15 */2 * * *", "at minutes 0, 15, 30 and 45 past hours 0, 2, 4, ..., 22 every day"),
        # weekdays: names, 7 is Sunday, runs that wrap around the week
        ("0 9 * * MON-FRI", "at 09:00, Monday to Friday"),
        ("0 9 * * mon,wed,fri", "at 09:00 on Monday, Wednesday and Friday"),
        ("0 8 * * 7", "at 08:00 on Sunday"),
        ("0 8 * * 5-7", "at 08:00, Friday to Sunday"),
        ("0 8 * * 0,1", "at 08:00 on Sunday and Monday"),
        ("15 10 * * 1-3,5", "at 10:15 on Monday to Wednesday and Friday"),
        ("0 0 * * 0-6", "at 00:00 every day"),
        ("0 0 * * 1-7", "at 00:00 every day"),
        ("*/15 * * * 0", "every 15 minutes on Sunday"),
        ("0 * * * 1-5", "every hour, on the hour, Monday to Friday"),
        # days of the month, months, names
        ("0 0 1-7 * *", "at 00:00 on days 1-7 of every month"),
        ("0 0 */2 * *", "at 00:00 on days 1, 3, 5, ..., 31 of every month"),
        ("0 0 L * *", "at 00:00 on the last day of every month"),
        ("0 0 1,L * *", "at 00:00 on day 1 and the last day of every month"),
        ("0 0 L 2 *", "at 00:00 on the last day of February"),
        ("0 0 1,15 6 *", "at 00:00 on June 1 and 15"),
        ("0 9 1 JAN *", "at 09:00 on January 1"),
        ("59 23 31 dec *", "at 23:59 on December 31"),
        ("0 0 1 1,4,7,10 *", "at 00:00 on day 1 of January, April, July and October"),
        ("0 0 1 JAN-MAR,OCT *", "at 00:00 on day 1 of January to March and October"),
        ("0 0 * 11,12,1,2 *", "at 00:00 every day in November to February"),
        ("0 * * 1 *", "every hour, on the hour, in January"),
        ("* * 1 * *", "every minute on day 1 of every month"),
        ("0 0 1 * ?", "at 00:00 on day 1 of every month"),
        ("0 0 ? * 1", "at 00:00 on Monday"),
        # both day fields restricted: a day matches if either does
        ("0 0 1 * 1", "at 00:00 on day 1 of the month or on Monday"),
        ("0 0 1,15 * MON-FRI", "at 00:00 on days 1 and 15 of the month or on Monday to Friday"),
        ("0 0 L * 5", "at 00:00 on the last day of the month or on Friday"),
        ("0 0 1 1 1", "at 00:00 on day 1 of the month or on Monday, in January"),
        ("0 * 1 * 1", "every hour, on the hour, on day 1 of the month or on Monday"),
        ("0 0 1-31 * 1", "at 00:00 every day"),  # day-of-month matches every day, so every day matches
        # whitespace is not part of the meaning
        ("  0   6 * *  * ", "at 06:00 every day"),
    ],
)
def test_describe_cron(expression: str, words: str) -> None:
    assert describe_cron(expression) == words


PRESET_WORDS = {
    "@hourly": "every hour, on the hour",
    "@daily": "at 00:00 every day",
    "@midnight": "at 00:00 every day",
    "@weekly": "at 00:00 on Sunday",
    "@monthly": "at 00:00 on day 1 of every month",
    "@yearly": "at 00:00 on January 1",
    "@annually": "at 00:00 on January 1",
}


@pytest.mark.parametrize(("preset", "words"), PRESET_WORDS.items())
def test_presets_read_like_their_crons(preset: str, words: str) -> None:
    assert describe_cron(preset) == words
    assert describe_cron(preset.upper()) == words
    assert describe_cron(PRESETS[preset]) == words


def test_every_preset_has_words() -> None:
    assert set(PRESETS) == set(PRESET_WORDS)


def _walls_on(expression: str, day: str) -> list[str]:
    """The wall times the cron module runs ``expression`` at on ``day``, as HH:MM."""
    start = datetime.fromisoformat(day)
    walls = parse_cron(expression).walls_after(start - timedelta(microseconds=1))
    return [w.strftime("%H:%M") for w in takewhile(lambda w: w.date() == start.date(), walls)]


@pytest.mark.parametrize(
    "expression",
    ["0 9,17 * * *", "0,30 9,17 * * *", "0 0,6,12,18 * * *", "30 7 * * 1-5", "0,30 9 * * *"],
)
def test_named_times_are_the_times_it_runs(expression: str) -> None:
    named = re.findall(r"\d\d:\d\d", describe_cron(expression))
    assert named == _walls_on(expression, "2024-05-06")  # a Monday


@pytest.mark.parametrize(
    "expression",
    ["*/15 9-17 * * *", "* 9 * * *", "0 1/2 * * *", "0 8-18/2 * * *", "0 */5 * * *", "0 9-11 * * *"],
)
def test_a_range_of_times_names_the_first_and_last_run(expression: str) -> None:
    words = describe_cron(expression)
    walls = _walls_on(expression, "2024-05-06")
    found = re.search(r" from (\d\d:\d\d) to (\d\d:\d\d)", words)
    assert found is not None, words
    assert found.groups() == (walls[0], walls[-1])


@pytest.mark.parametrize(
    ("expression", "field"),
    [
        ("61 * * * *", "minute"),
        ("* 24 * * *", "hour"),
        ("* * 0 * *", "day-of-month"),
        ("* * * 13 *", "month"),
        ("* * * * 8", "day-of-week"),
        ("* * * * MOX", "day-of-week"),
        ("*/0 * * * *", "minute"),
        ("0 0 31 2 *", "day-of-month"),
    ],
)
def test_a_bad_field_raises_schedule_error_naming_it(expression: str, field: str) -> None:
    with pytest.raises(ScheduleError, match=f"the {field} field") as caught:
        describe_cron(expression)
    assert caught.value.field == field


@pytest.mark.parametrize("expression", ["* * * *", "", "0 0 0 * * * *", "@dayly", "@once", 5])
def test_a_bad_expression_raises_schedule_error(expression: Any) -> None:
    with pytest.raises(ScheduleError):
        describe_cron(expression)


@pytest.mark.parametrize(
    ("schedule", "words"),
    [
        (None, "manual runs only"),
        ("None", "manual runs only"),
        ("@once", "once"),
        (" @ONCE ", "once"),
        ("30 7 * * 1-5", "at 07:30, Monday to Friday"),
        ("@daily", "at 00:00 every day"),
        (timedelta(hours=2), "every 2 hours"),
        (timedelta(minutes=30), "every 30 minutes"),
        (timedelta(days=1), "every day"),
        (timedelta(hours=24), "every day"),
        (timedelta(days=1, hours=6), "every 1 day 6 hours"),
        (timedelta(minutes=90), "every 1 hour 30 minutes"),
        (timedelta(hours=1), "every hour"),
        (timedelta(seconds=1), "every second"),
        (timedelta(seconds=45), "every 45 seconds"),
        (timedelta(weeks=1), "every week"),
        (timedelta(days=14), "every 2 weeks"),
        (timedelta(days=10), "every 10 days"),
        (timedelta(days=7, hours=1), "every 7 days 1 hour"),
        (timedelta(milliseconds=500), "every 500 milliseconds"),
        (timedelta(microseconds=1500), "every 1500 microseconds"),
    ],
)
def test_describe_schedule(schedule: Any, words: str) -> None:
    assert describe_schedule(schedule) == words


@pytest.mark.parametrize("schedule", [timedelta(0), timedelta(minutes=-5), 3600, ["0 6 * * *"], "61 * * * *"])
def test_describe_schedule_refuses_what_a_dag_refuses(schedule: Any) -> None:
    with pytest.raises(ScheduleError):
        describe_schedule(schedule)
    with pytest.raises(ScheduleError):
        make_timetable(schedule, SEOUL, parse_date("2024-01-01", SEOUL))


@pytest.mark.parametrize(
    ("schedule", "summary", "description"),
    [
        ("0 6 * * *", "at 06:00 every day (Asia/Seoul)", "0 6 * * * (Asia/Seoul)"),
        ("@weekly", "at 00:00 on Sunday (Asia/Seoul)", "@weekly (Asia/Seoul)"),
        (timedelta(minutes=30), "every 30 minutes", "every 0:30:00"),
        ("@once", "once", "@once"),
        (None, "manual runs only", "manual"),
    ],
)
def test_timetables_summarise_in_words_and_keep_their_description(
    schedule: Any, summary: str, description: str
) -> None:
    timetable = make_timetable(schedule, SEOUL, parse_date("2024-01-01", SEOUL))
    assert timetable.summary == summary
    assert describe_schedule(timetable) == summary
    assert timetable.description == description


def test_a_timetable_nbflow_does_not_know_shows_its_description() -> None:
    class Fortnightly(Timetable):
        tz = timezone.utc
        description = "every other Friday"

        def next_after(self, after: datetime) -> datetime | None:
            return None

        def previous_before(self, at: datetime) -> datetime | None:
            return None

    assert describe_schedule(Fortnightly()) == "every other Friday"
