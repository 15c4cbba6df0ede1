"""Task and run states, trigger rules, and the one table of legal state changes.

States are ``str`` enums so that ``run.state == "success"`` reads naturally and values go to the
store and to JSON as plain strings.
"""

from __future__ import annotations

from enum import Enum

from nbflow.errors import IllegalTransitionError, UnknownTriggerRuleError


class TaskState(str, Enum):
    """Where one task instance (a task in one DAG run) stands."""

    NONE = "none"                          #: created, its upstream has not finished yet
    SCHEDULED = "scheduled"                #: its trigger rule passed; waiting for a slot
    QUEUED = "queued"                      #: claimed and handed to an executor
    RUNNING = "running"                    #: executing now
    SUCCESS = "success"                    #: finished and returned
    FAILED = "failed"                      #: raised and has no retries left
    SKIPPED = "skipped"                    #: not run: a branch, a short-circuit or SkipTask
    UPSTREAM_FAILED = "upstream_failed"    #: not run: its trigger rule can no longer pass
    UP_FOR_RETRY = "up_for_retry"          #: raised; will run again after its retry delay
    UP_FOR_RESCHEDULE = "up_for_reschedule"  #: a sensor that gave back its slot until the next poke
    REMOVED = "removed"                    #: the task left the DAG's definition

    def __str__(self) -> str:
        return self.value

    @property
    def finished(self) -> bool:
        return self in FINISHED_TASK_STATES


class RunState(str, Enum):
    """Where one DAG run stands."""

    QUEUED = "queued"      #: created, no task started yet
    RUNNING = "running"    #: at least one task started, some are not finished
    SUCCESS = "success"    #: every leaf task succeeded or was skipped
    FAILED = "failed"      #: some leaf task failed or is upstream_failed

    def __str__(self) -> str:
        return self.value

    @property
    def finished(self) -> bool:
        return self in (RunState.SUCCESS, RunState.FAILED)


class TriggerRule(str, Enum):
    """When a task may run, given the states of its direct upstream tasks."""

    ALL_SUCCESS = "all_success"          #: every upstream succeeded (the default)
    ALL_FAILED = "all_failed"            #: every upstream failed or is upstream_failed
    ALL_DONE = "all_done"                #: every upstream finished, whatever the outcome
    ALL_SKIPPED = "all_skipped"          #: every upstream was skipped
    ONE_SUCCESS = "one_success"          #: at least one upstream succeeded
    ONE_FAILED = "one_failed"            #: at least one upstream failed or is upstream_failed
    ONE_DONE = "one_done"                #: at least one upstream succeeded or failed
    NONE_FAILED = "none_failed"          #: no upstream failed (successes and skips are fine)
    NONE_FAILED_MIN_ONE_SUCCESS = "none_failed_min_one_success"  #: none failed, one succeeded
    NONE_SKIPPED = "none_skipped"        #: every upstream finished and none was skipped
    ALWAYS = "always"                    #: run regardless of upstream
    #: every upstream finished and, if it has setup tasks upstream, at least one of them succeeded:
    #: a teardown's rule, so the resource a setup made is released whatever the work did
    ALL_DONE_SETUP_SUCCESS = "all_done_setup_success"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: object, dag_id: str | None = None, task_id: str | None = None) -> TriggerRule:
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            raise UnknownTriggerRuleError(value, [rule.value for rule in cls], dag_id, task_id) from None


FINISHED_TASK_STATES = frozenset(
    {TaskState.SUCCESS, TaskState.FAILED, TaskState.SKIPPED, TaskState.UPSTREAM_FAILED, TaskState.REMOVED}
)

_S = TaskState
#: The legal changes of a task instance's state. Clearing a finished task (to run it again) is a
#: change back to NONE, which is why every finished state lists it.
TASK_TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    _S.NONE: frozenset({_S.SCHEDULED, _S.SKIPPED, _S.UPSTREAM_FAILED, _S.REMOVED, _S.QUEUED, _S.SUCCESS, _S.FAILED}),
    _S.SCHEDULED: frozenset({_S.QUEUED, _S.RUNNING, _S.NONE, _S.SKIPPED, _S.UPSTREAM_FAILED, _S.REMOVED, _S.SUCCESS, _S.FAILED}),
    _S.QUEUED: frozenset({_S.RUNNING, _S.SCHEDULED, _S.NONE, _S.FAILED, _S.UP_FOR_RETRY, _S.SUCCESS, _S.SKIPPED}),
    # running -> upstream_failed: only a mapped task (running while its instances run), when its
    # instances all ended upstream-failed within a mapped task group
    _S.RUNNING: frozenset({_S.SUCCESS, _S.FAILED, _S.SKIPPED, _S.UP_FOR_RETRY, _S.UP_FOR_RESCHEDULE, _S.NONE,
                           _S.UPSTREAM_FAILED}),
    _S.UP_FOR_RETRY: frozenset({_S.SCHEDULED, _S.QUEUED, _S.NONE, _S.FAILED, _S.SUCCESS, _S.SKIPPED}),
    _S.UP_FOR_RESCHEDULE: frozenset({_S.SCHEDULED, _S.QUEUED, _S.NONE, _S.FAILED, _S.SUCCESS, _S.SKIPPED}),
    _S.SUCCESS: frozenset({_S.NONE, _S.FAILED}),
    _S.FAILED: frozenset({_S.NONE, _S.SUCCESS}),
    _S.SKIPPED: frozenset({_S.NONE, _S.SUCCESS, _S.FAILED}),
    _S.UPSTREAM_FAILED: frozenset({_S.NONE, _S.SUCCESS, _S.FAILED}),
    _S.REMOVED: frozenset({_S.NONE}),
}

RUN_TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.QUEUED: frozenset({RunState.RUNNING, RunState.SUCCESS, RunState.FAILED}),
    RunState.RUNNING: frozenset({RunState.SUCCESS, RunState.FAILED, RunState.QUEUED}),
    RunState.SUCCESS: frozenset({RunState.QUEUED, RunState.RUNNING, RunState.FAILED}),
    RunState.FAILED: frozenset({RunState.QUEUED, RunState.RUNNING, RunState.SUCCESS}),
}


def check_task_transition(current: TaskState, new: TaskState) -> TaskState:
    """Return ``new`` if a task instance may go there from ``current``; raise otherwise."""
    if new != current and new not in TASK_TRANSITIONS[current]:
        raise IllegalTransitionError("task instance", current.value, new.value)
    return new


def check_run_transition(current: RunState, new: RunState) -> RunState:
    """Return ``new`` if a DAG run may go there from ``current``; raise otherwise."""
    if new != current and new not in RUN_TRANSITIONS[current]:
        raise IllegalTransitionError("DAG run", current.value, new.value)
    return new
