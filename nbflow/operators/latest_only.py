"""``LatestOnlyOperator``: run the downstream tasks only for the latest scheduled interval.

For DAGs whose work only makes sense for "now" (send the morning e-mail, refresh a dashboard): a
catch-up or a backfill of old intervals skips those tasks, while the latest interval runs them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from nbflow.operators.branch import BaseBranchOperator

#: run kinds started by a person (``nbflow dags trigger``, ``dag.test()``): never skipped, because
#: whoever started them asked for the work now
TRIGGERED_RUN_TYPES = frozenset({"manual", "test"})


class LatestOnlyOperator(BaseBranchOperator):
    """Ends as success, and skips its direct downstream tasks unless this run is the latest.

    A run is the latest when now lies in the interval after its own, that is after its
    ``data_interval_end`` and no later than the next scheduled time (Airflow's rule). Runs started
    by hand (triggered, ``dag.test()``) are never skipped; nor is a run of a DAG without a next
    scheduled time (``@once``, ``schedule=None``). Tasks further down follow their trigger rules, so
    a task with ``trigger_rule="all_done"`` still runs.
    """

    def __getstate__(self) -> dict[str, Any]:
        # A task travels to a worker process without its DAG; the rule needs the DAG's schedule.
        state = super().__getstate__()
        if self.dag is not None:
            state["_shipped_timetable"] = self.dag.timetable
        return state

    def _timetable(self) -> Any:
        return self.dag.timetable if self.dag is not None else self.__dict__.get("_shipped_timetable")

    def is_latest(self, context: dict[str, Any], now: datetime | None = None) -> bool:
        """Whether the run of ``context`` is the latest scheduled one at ``now`` (default: now)."""
        run_type = str(context.get("run_id", "")).split("__", 1)[0]
        if run_type in TRIGGERED_RUN_TYPES:
            self._say(f"a {run_type} run is never skipped")
            return True
        timetable = self._timetable()
        end = context["data_interval_end"]
        following = timetable.next_after(end) if timetable is not None else None
        if following is None:
            self._say("no scheduled time after this run's: it is the last one")
            return True
        now = (now or datetime.now(UTC)).astimezone(UTC)
        latest = end.astimezone(UTC) < now <= following.astimezone(UTC)
        self._say(f"{'latest' if latest else 'not the latest'}: now {now.isoformat()}, the next interval is "
                  f"({end.isoformat()}, {following.isoformat()}]")
        return latest

    def choose_branch(self, context: dict[str, Any]) -> list[str]:
        return sorted(self.downstream_task_ids) if self.is_latest(context) else []

    def _say(self, message: str) -> None:
        print(f"latest only: {message}", flush=True)
