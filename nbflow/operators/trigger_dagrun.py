"""``TriggerDagRunOperator``: start a run of another DAG, and optionally wait for it to end.

The run is made as ``nbflow dags trigger`` makes one (``engine.controls.trigger``: a queued manual
run, left to a scheduler host), so a run triggered by a task is no different from one triggered by
hand. The engine is imported inside :meth:`TriggerDagRunOperator.execute`, so defining a DAG never
touches it or the store.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, ClassVar

from nbflow.errors import DagDefinitionError, InvalidOptionError, TaskFailedError
from nbflow.operators.base import BaseOperator, duration_seconds
from nbflow.states import RunState

#: the run states a run ends in: waiting stops there whatever the task was told to accept
_ENDED = frozenset({RunState.SUCCESS.value, RunState.FAILED.value})


class TriggerDagRunOperator(BaseOperator):
    """Queue a manual run of ``trigger_dag_id`` and output its run id.

    ``conf``, ``trigger_run_id`` and ``logical_date`` are templated (``logical_date`` defaults to now).
    With ``wait_for_completion`` the task waits, checking every ``poke_interval`` seconds, until the
    run is in ``allowed_states`` (success) or ``failed_states`` (it fails); a run that ends in neither
    fails it too, since it will not move again by itself. A ``trigger_run_id`` the DAG has already is
    an error, unless ``reset_dag_run=True``: then that run is cleared and runs again, as Airflow does.
    """

    template_fields: ClassVar[tuple[str, ...]] = ("trigger_dag_id", "trigger_run_id", "conf", "logical_date")

    def __init__(
        self,
        *,
        trigger_dag_id: str,
        trigger_run_id: str | None = None,
        conf: dict[str, Any] | None = None,
        logical_date: str | datetime | None = None,
        reset_dag_run: bool = False,
        wait_for_completion: bool = False,
        poke_interval: float | timedelta = 60.0,
        allowed_states: Iterable[str] | None = None,
        failed_states: Iterable[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(trigger_dag_id, str) or not trigger_dag_id:
            raise InvalidOptionError("trigger_dag_id", trigger_dag_id, "give the id of the DAG to run",
                                     self.dag_id, self.task_id)
        if conf is not None and not isinstance(conf, dict):
            raise InvalidOptionError("conf", conf, "give a dict (the triggered run's dag_run.conf)",
                                     self.dag_id, self.task_id)
        for name, value in (("reset_dag_run", reset_dag_run), ("wait_for_completion", wait_for_completion)):
            if not isinstance(value, bool):
                raise InvalidOptionError(name, value, "give True or False", self.dag_id, self.task_id)
        seconds = duration_seconds(poke_interval)
        if seconds is None or seconds <= 0:
            raise InvalidOptionError("poke_interval", poke_interval,
                                     "give more than 0 seconds (a finite number or a datetime.timedelta)",
                                     self.dag_id, self.task_id)
        self.trigger_dag_id = trigger_dag_id
        self.trigger_run_id = trigger_run_id
        self.conf = conf
        self.logical_date = logical_date
        self.reset_dag_run = reset_dag_run
        self.wait_for_completion = wait_for_completion
        self.poke_interval = seconds
        self.allowed_states = self._states("allowed_states", allowed_states, (RunState.SUCCESS.value,))
        self.failed_states = self._states("failed_states", failed_states, (RunState.FAILED.value,))
        both = self.allowed_states & self.failed_states
        if both:
            raise DagDefinitionError(
                f"states {sorted(both)} are both allowed and failed; a state can be only one of them.",
                self.dag_id, self.task_id,
            )

    def _states(self, name: str, given: Iterable[Any] | None, default: tuple[str, ...]) -> frozenset[str]:
        if given is None:
            return frozenset(default)
        values = [given] if isinstance(given, str) else list(given)
        names = frozenset(str(getattr(value, "value", value)) for value in values)
        known = {state.value for state in RunState}
        unknown = sorted(names - known)
        if unknown:
            raise InvalidOptionError(name, unknown[0], "give run states: " + ", ".join(sorted(known)),
                                     self.dag_id, self.task_id)
        return names

    def execute(self, context: dict[str, Any]) -> str:
        from nbflow.engine import controls
        from nbflow.store import Store

        store = Store.open()
        try:
            dag = controls.find_dag(self.trigger_dag_id, store=store)
            run_id = self.trigger_run_id or None
            if run_id is not None and self.reset_dag_run and store.get_run(dag.dag_id, run_id) is not None:
                controls.clear(dag, run_id=run_id, store=store)
                print(f"run '{run_id}' of DAG '{dag.dag_id}' cleared to run again (reset_dag_run)", flush=True)
            else:
                run_id = controls.trigger(dag, conf=self.conf, logical_date=self.logical_date or None,
                                          run_id=run_id, store=store)
                print(f"triggered run '{run_id}' of DAG '{dag.dag_id}'", flush=True)
            if self.wait_for_completion:
                self._wait(store, dag.dag_id, run_id, context)
        finally:
            store.close()
        return run_id

    def _wait(self, store: Any, dag_id: str, run_id: str, context: dict[str, Any]) -> None:
        """Poke the run's state every ``poke_interval`` seconds until it is one this task accepts or
        refuses; the slot is held meanwhile, as Airflow's non-deferrable operator holds it."""
        own_dag = getattr(context.get("dag"), "dag_id", None) or self.dag_id or ""
        while True:
            row = store.get_run(dag_id, run_id)
            state = "" if row is None else str(row["state"])
            if state in self.allowed_states:
                return
            if state in self.failed_states or (state in _ENDED and state not in self.allowed_states) or row is None:
                what = "is gone from the store" if row is None else f"ended in state '{state}'"
                raise TaskFailedError(
                    own_dag, self.task_id,
                    f"run '{run_id}' of DAG '{dag_id}' {what}, not one of allowed_states "
                    f"{sorted(self.allowed_states)}; see that run, fix it and clear this task",
                )
            print(f"run '{run_id}' of DAG '{dag_id}' is {state}; next look in {self.poke_interval:.3g} s", flush=True)
            time.sleep(self.poke_interval)
