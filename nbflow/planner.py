"""What can run next, given the states of a DAG run's task instances. Pure: no I/O, no clock.

The planner is incremental, because a run of 10,000 tasks must not re-read 10,000 states each time
one task finishes: :func:`plan` looks only at the tasks it is given and at the downstream of any
task it skips or fails on the way.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from nbflow.states import TaskState, TriggerRule

if TYPE_CHECKING:
    from nbflow.dag import DAG

S = TaskState
_FAILED = (S.FAILED, S.UPSTREAM_FAILED)


@dataclass(frozen=True)
class Decision:
    """A branching task's choice: the direct downstream tasks it follows; with ``skip_all``, a
    short-circuit that skips every descendant."""

    followed: frozenset[str]
    skip_all: bool = False


@dataclass
class Plan:
    """State changes the planner decided: tasks to schedule, skip, and mark upstream-failed."""

    changes: dict[str, TaskState] = field(default_factory=dict)

    @property
    def ready(self) -> list[str]:
        return [t for t, s in self.changes.items() if s is S.SCHEDULED]


RUN, WAIT, SKIP, UPSTREAM_FAILED = "run", "wait", "skip", "upstream_failed"


def judge(
    rule: TriggerRule, total: int, success: int, skipped: int, failed: int, done: int,
    setups: int = 0, setup_success: int = 0, setup_skipped: int = 0,
) -> str:
    """The verdict of a trigger rule over the direct upstream tasks' states.

    ``failed`` counts failed and upstream-failed tasks; ``done`` counts every finished one.
    ``setups`` counts the upstream tasks that are setups (``setup_success`` of them succeeded,
    ``setup_skipped`` were skipped); only ``all_done_setup_success`` reads them.
    """
    if total == 0 or rule is TriggerRule.ALWAYS:
        return RUN
    all_done = done >= total
    R = TriggerRule
    if rule is R.ALL_DONE_SETUP_SUCCESS:
        # Airflow's teardown rule: wait for everything, then release only what a setup made
        if not all_done:
            return WAIT
        if setups and setup_skipped >= setups:
            return SKIP
        return UPSTREAM_FAILED if setups and not setup_success else RUN
    if rule is R.ALL_SUCCESS:
        return UPSTREAM_FAILED if failed else SKIP if skipped else RUN if success == total else WAIT
    if rule is R.ALL_FAILED:
        return SKIP if success or skipped else RUN if failed == total else WAIT
    if rule is R.ALL_DONE:
        return RUN if all_done else WAIT
    if rule is R.ALL_SKIPPED:
        return SKIP if success or failed else RUN if skipped == total else WAIT
    if rule is R.ONE_SUCCESS:
        return RUN if success else (UPSTREAM_FAILED if failed else SKIP) if all_done else WAIT
    if rule is R.ONE_FAILED:
        return RUN if failed else SKIP if all_done else WAIT
    if rule is R.ONE_DONE:
        return RUN if success or failed else SKIP if all_done else WAIT
    if rule is R.NONE_FAILED:
        return UPSTREAM_FAILED if failed else RUN if all_done else WAIT
    if rule is R.NONE_FAILED_MIN_ONE_SUCCESS:
        return UPSTREAM_FAILED if failed else (RUN if success else SKIP) if all_done else WAIT
    if rule is R.NONE_SKIPPED:
        return SKIP if skipped else RUN if all_done else WAIT
    raise AssertionError(f"unhandled trigger rule {rule}")


def _verdict(dag: DAG, task_id: str, states: dict[str, TaskState], decisions: dict[str, Decision],
             per_instance: bool = False) -> str:
    task = dag.task_dict[task_id]
    success = skipped = failed = done = setups = setup_success = setup_skipped = 0
    group = getattr(task, "map_group", None)
    for up in task.upstream_task_ids:
        state = states[up]
        if group is not None and not per_instance and getattr(dag.task_dict[up], "map_group", None) == group:
            # an earlier task of the same mapped group: each instance is judged against the same
            # instance of it when this task expands (instance_verdict); here it only has to be done
            if not state.finished:
                return WAIT
            success += 1
            done += 1
            continue
        decision = decisions.get(up)
        if decision is not None and state is S.SUCCESS and task_id not in decision.followed:
            return SKIP  # a branch did not choose this task
        if state is S.SUCCESS:
            success += 1
        elif state is S.SKIPPED:
            skipped += 1
        elif state in _FAILED:
            failed += 1
        if state.finished:
            done += 1
        if getattr(dag.task_dict[up], "is_setup", False):
            setups += 1
            setup_success += state is S.SUCCESS
            setup_skipped += state is S.SKIPPED
    return judge(task.trigger_rule, len(task.upstream_task_ids), success, skipped, failed, done,
                 setups, setup_success, setup_skipped)


_TO_STATE = {RUN: S.SCHEDULED, SKIP: S.SKIPPED, UPSTREAM_FAILED: S.UPSTREAM_FAILED}


def instance_verdict(dag: DAG, task_id: str, states: dict[str, TaskState], decisions: dict[str, Decision]) -> TaskState:
    """The first state of one instance of a task of a mapped group, given the states its upstream
    has for it (the same instance of the group's earlier tasks, the others' own states)."""
    verdict = _verdict(dag, task_id, states, decisions, per_instance=True)
    return S.SCHEDULED if verdict == WAIT else _TO_STATE[verdict]


def plan(
    dag: DAG,
    candidates: Iterable[str],
    states: dict[str, TaskState],
    decisions: dict[str, Decision] | None = None,
) -> Plan:
    """Decide the tasks among ``candidates`` that wait in state ``none``, and follow skips and
    upstream failures downstream. ``states`` is not changed; apply ``Plan.changes`` yourself."""
    decisions = decisions or {}
    view = dict(states)
    result = Plan()
    queue = deque(candidates)
    while queue:
        task_id = queue.popleft()
        if view.get(task_id) is not S.NONE:
            continue
        verdict = _verdict(dag, task_id, view, decisions)
        if verdict == WAIT:
            continue
        new = _TO_STATE[verdict]
        view[task_id] = result.changes[task_id] = new
        if new is not S.SCHEDULED:
            queue.extend(dag.task_dict[task_id].downstream_task_ids)
    return result


def plan_start(dag: DAG, states: dict[str, TaskState]) -> Plan:
    """The first plan of a run: every task that waits, in dependency order."""
    return plan(dag, dag.topological_order(), states)


def plan_after(
    dag: DAG, finished: Iterable[str], states: dict[str, TaskState], decisions: dict[str, Decision]
) -> Plan:
    """The plan after ``finished`` tasks reached a final state: their downstream, plus every
    descendant of a short-circuit that skips them all."""
    view = dict(states)
    forced: dict[str, TaskState] = {}
    candidates: list[str] = []
    for task_id in finished:
        decision = decisions.get(task_id)
        if decision is not None and decision.skip_all and not decision.followed and view[task_id] is S.SUCCESS:
            for descendant in descendants(dag, task_id):
                if getattr(dag.task_dict[descendant], "is_teardown", False):
                    candidates.append(descendant)  # as in Airflow: a teardown still releases what was set up
                elif view[descendant] is S.NONE:
                    view[descendant] = forced[descendant] = S.SKIPPED
        candidates.extend(dag.task_dict[task_id].downstream_task_ids)
    result = plan(dag, candidates, view, decisions)
    result.changes = {**forced, **result.changes}
    return result


def descendants(dag: DAG, task_id: str) -> list[str]:
    seen: set[str] = set()
    stack = list(dag.task_dict[task_id].downstream_task_ids)
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(dag.task_dict[current].downstream_task_ids)
    return sorted(seen)


def _relatives(dag: DAG, task_id: str, upstream: bool) -> set[str]:
    seen: set[str] = set()
    stack = [task_id]
    while stack:
        task = dag.task_dict[stack.pop()]
        for other in task.upstream_task_ids if upstream else task.downstream_task_ids:
            if other not in seen:
                seen.add(other)
                stack.append(other)
    return seen


def setups_and_teardowns(dag: DAG, task_id: str) -> set[str]:
    """What clearing ``task_id`` clears with it, as in Airflow: a setup's teardowns; for a work task,
    the setups upstream of it whose teardown is downstream of it (or that have none), with their
    teardowns, so that the work runs again on a resource made again and released again."""
    tasks = dag.task_dict
    task = tasks[task_id]
    if getattr(task, "is_setup", False):
        return {t for t in task.downstream_task_ids if getattr(tasks[t], "is_teardown", False)}
    if getattr(task, "is_teardown", False):
        return set()
    later_teardowns = {t for t in _relatives(dag, task_id, upstream=False) if getattr(tasks[t], "is_teardown", False)}
    found: set[str] = set()
    for up in _relatives(dag, task_id, upstream=True):
        if not getattr(tasks[up], "is_setup", False):
            continue
        teardowns = {t for t in tasks[up].downstream_task_ids if getattr(tasks[t], "is_teardown", False)}
        if not teardowns or teardowns & later_teardowns:
            found |= {up, *teardowns}
    return found


def run_outcome(dag: DAG, states: dict[str, TaskState]) -> TaskState | None:
    """``SUCCESS`` or ``FAILED`` once every task has finished, else ``None``. A run fails when one of
    its leaf tasks failed or is upstream-failed, as in Airflow.

    Teardowns do not count (a failed clean-up does not undo the work), unless they have
    ``on_failure_fail_dagrun``; and a task whose only downstream is such teardowns counts as a leaf,
    so failed work still fails the run when its teardown succeeded."""
    if not all(state.finished for state in states.values()):
        return None
    return S.FAILED if any(states[leaf] in _FAILED for leaf in effective_leaves(dag)) else S.SUCCESS


def _judged(task: Any) -> bool:
    """Whether ``task``'s state may decide its run's: any task but a teardown without
    ``on_failure_fail_dagrun``."""
    return not getattr(task, "is_teardown", False) or getattr(task, "on_failure_fail_dagrun", False)


def effective_leaves(dag: DAG) -> list[str]:
    """The tasks whose states decide a run's: those that count and have no downstream that counts
    (Airflow's rule, where a teardown is left out of the run's state)."""
    tasks = dag.task_dict
    return [
        task_id for task_id, task in tasks.items()
        if _judged(task) and not any(_judged(tasks[down]) for down in task.downstream_task_ids)
    ]
