"""What a try's end means for its task instance: one pure decision over the state table.

The driver is the one writer of outcomes, and this is the one place that decides them: given the
task instance's state and how its try ended, the new state, when it runs again (a retry or a
sensor's reschedule), which callback fires, and whether its downstream is planned now. No store, no
clock, no executor: everything the decision needs comes in the event, so it is tested with tables
of cases, and every state it gives passes :func:`nbflow.states.check_task_transition`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from nbflow.states import TaskState, check_task_transition

S = TaskState


class Ending(str, Enum):
    """How one try of a task ended, as the runner reported it."""

    RETURNED = "returned"          #: the task returned (its output was kept)
    SKIPPED = "skipped"            #: it ended itself as skipped (SkipTask, a short-circuit)
    RESCHEDULED = "rescheduled"    #: a sensor gave its slot back until its next poke, in the same try
    FAILED = "failed"              #: it raised, timed out, lost its worker, or its output was refused
    FAILED_FOR_GOOD = "failed_for_good"  #: it raised FailTask: failed, whatever retries are left


@dataclass(frozen=True)
class TryEnded:
    """The event: one try of a task instance ended."""

    ending: Ending
    #: the try that ended, counted from 1, and how many the task may have in all
    try_number: int
    max_tries: int
    #: when it ended (aware)
    at: datetime
    #: seconds to wait before the next try, if there is one (the task's retry_delay for this try)
    retry_delay: float = 0.0
    #: for RESCHEDULED: when the sensor pokes again
    reschedule_at: datetime | None = None


@dataclass(frozen=True)
class Verdict:
    """What the driver records for that event."""

    state: TaskState
    #: when the task instance becomes ready again (a retry or a reschedule), else None
    wake_at: datetime | None
    #: the task callback that fires: on_success_callback, on_failure_callback, on_retry_callback
    callback: str | None
    #: True when the task instance finished for good, so its downstream is planned now
    final: bool


def decide(current: TaskState, event: TryEnded) -> Verdict:
    """The verdict on ``event`` for a task instance in ``current`` (normally ``running``).

    Raises :class:`~nbflow.errors.IllegalTransitionError` if the state table forbids the change,
    which would be a bug in the caller, never a user's mistake.
    """
    if event.ending is Ending.RESCHEDULED:
        verdict = Verdict(S.UP_FOR_RESCHEDULE, event.reschedule_at or event.at, None, False)
    elif event.ending is Ending.RETURNED:
        verdict = Verdict(S.SUCCESS, None, "on_success_callback", True)
    elif event.ending is Ending.SKIPPED:
        verdict = Verdict(S.SKIPPED, None, None, True)
    elif event.ending is Ending.FAILED and event.try_number < event.max_tries:
        verdict = Verdict(S.UP_FOR_RETRY, event.at + timedelta(seconds=max(0.0, event.retry_delay)),
                          "on_retry_callback", False)
    else:
        verdict = Verdict(S.FAILED, None, "on_failure_callback", True)
    check_task_transition(current, verdict.state)
    return verdict
