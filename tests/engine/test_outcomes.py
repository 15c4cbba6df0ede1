"""The outcome decision, as a table: a task instance's state and how its try ended give its new
state, when it runs again, which callback fires and whether its downstream is planned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nbflow.engine.outcomes import Ending, TryEnded, Verdict, decide
from nbflow.errors import IllegalTransitionError
from nbflow.states import TaskState as S

AT = datetime(2024, 6, 3, 7, 0, tzinfo=UTC)
LATER = AT + timedelta(minutes=5)


@pytest.mark.parametrize("ending, try_number, max_tries, expected", [
    (Ending.RETURNED, 1, 1, Verdict(S.SUCCESS, None, "on_success_callback", True)),
    (Ending.RETURNED, 1, 3, Verdict(S.SUCCESS, None, "on_success_callback", True)),
    (Ending.SKIPPED, 1, 3, Verdict(S.SKIPPED, None, None, True)),
    (Ending.FAILED, 1, 3, Verdict(S.UP_FOR_RETRY, AT + timedelta(seconds=30), "on_retry_callback", False)),
    (Ending.FAILED, 2, 3, Verdict(S.UP_FOR_RETRY, AT + timedelta(seconds=30), "on_retry_callback", False)),
    (Ending.FAILED, 3, 3, Verdict(S.FAILED, None, "on_failure_callback", True)),
    (Ending.FAILED, 1, 1, Verdict(S.FAILED, None, "on_failure_callback", True)),
    (Ending.FAILED_FOR_GOOD, 1, 3, Verdict(S.FAILED, None, "on_failure_callback", True)),
    (Ending.RESCHEDULED, 1, 1, Verdict(S.UP_FOR_RESCHEDULE, LATER, None, False)),
])
def test_a_running_task_instance(ending: Ending, try_number: int, max_tries: int, expected: Verdict) -> None:
    event = TryEnded(ending, try_number, max_tries, AT, retry_delay=30.0,
                     reschedule_at=LATER if ending is Ending.RESCHEDULED else None)
    assert decide(S.RUNNING, event) == expected


def test_a_negative_delay_never_schedules_a_retry_in_the_past() -> None:
    assert decide(S.RUNNING, TryEnded(Ending.FAILED, 1, 2, AT, retry_delay=-5)).wake_at == AT


@pytest.mark.parametrize("current", [S.NONE, S.SUCCESS, S.SKIPPED, S.UPSTREAM_FAILED, S.REMOVED])
def test_a_try_cannot_end_for_a_task_instance_that_was_not_running(current: S) -> None:
    """The decision obeys the one state table: a retry of a task that never ran is a bug, said so."""
    with pytest.raises(IllegalTransitionError):
        decide(current, TryEnded(Ending.FAILED, 1, 3, AT, retry_delay=1))
