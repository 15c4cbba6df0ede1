"""``dags/{dag}/runs``: the runs of a DAG, a manual run, one run, clearing and marking its tasks.

Nothing here waits for a task. A triggered run (or one that clearing or marking sent back to the
queue) is left to a live scheduler host when there is one, and otherwise driven by a one-run host
in a thread of the server (:class:`~nbflow.jupyter.server.host.RunStarter`); ``how`` says which.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from nbflow.errors import InvalidRequestError, RunNotFoundError
from nbflow.jupyter.server import serialize as out
from nbflow.jupyter.server.base import NbflowHandler
from nbflow.jupyter.server.dags import find_row
from nbflow.store import queries

if TYPE_CHECKING:
    from nbflow.dag import DAG
    from nbflow.jupyter.server.services import Services


def find_run(services: Services, dag_id: str, run_id: str) -> dict[str, Any]:
    find_row(services, dag_id)
    run = services.store.get_run(dag_id, run_id)
    if run is None:
        raise RunNotFoundError(dag_id, run_id)
    return run


def drive(services: Services, dag: DAG, run: dict[str, Any]) -> str:
    """``"queued"`` when a live scheduler host will pick the run up (or the DAG is paused, so the run
    waits for it to be unpaused); else ``"started"``: a one-run host in this server drives it."""
    from nbflow.engine import controls

    if queries.is_paused(services.store, dag.dag_id) or controls.live_schedulers(services.store, settings=services.settings):
        if services.host.scheduler is not None and services.host.running:
            services.host.scheduler.wake()  # this server's own host: look at the queued run now
        return "queued"
    services.runs.start(dag, run["id"], run_types=(run["run_type"],))
    return "started"


def list_runs(services: Services, dag_id: str, limit: int) -> dict[str, Any]:
    find_row(services, dag_id)
    return {"runs": [out.run_summary(r) for r in services.store.list_runs(dag_id, limit=limit)]}


def trigger(services: Services, dag_id: str, conf: Any) -> dict[str, Any]:
    from nbflow.engine import controls

    dag = services.catalog.require(dag_id)
    run_id = controls.trigger(dag, conf=conf, store=services.store)
    run = find_run(services, dag_id, run_id)
    how = drive(services, dag, run)
    return {"run": out.run_summary(services.store.get_run(dag_id, run_id) or run), "how": how}


def run_detail(services: Services, dag_id: str, run_id: str) -> dict[str, Any]:
    run = find_run(services, dag_id, run_id)
    result = out.run_summary(run)
    instances = queries.in_dag_order(services.store, dag_id, queries.folded_task_instances(services.store, run["id"]))
    result["task_instances"] = [out.task_instance(ti) for ti in instances]
    return result


def _requeued(services: Services, dag: DAG, run_id: str, run_states: dict[str, str]) -> str | None:
    if run_states.get(run_id) != "queued":
        return None
    return drive(services, dag, find_run(services, dag.dag_id, run_id))


def clear(services: Services, dag_id: str, run_id: str, task_ids: list[str] | None, downstream: bool,
          only_failed: bool) -> dict[str, Any]:
    from nbflow.engine import controls

    dag = services.catalog.require(dag_id)
    find_run(services, dag_id, run_id)
    changes = controls.clear(dag, run_id=run_id, task_ids=task_ids, downstream=downstream, only_failed=only_failed,
                             store=services.store)
    return {"cleared": [task for _run, task in changes], "left_alone": [task for _run, task in changes.skipped],
            "how": _requeued(services, dag, run_id, changes.run_states)}


def mark(services: Services, dag_id: str, run_id: str, task_ids: list[str], state: str,
         downstream: bool) -> dict[str, Any]:
    from nbflow.engine import controls

    dag = services.catalog.require(dag_id)
    find_run(services, dag_id, run_id)
    changes = controls.mark(dag, run_id, task_ids, state, downstream=downstream, store=services.store)
    return {"marked": [task for _run, task in changes], "left_alone": [task for _run, task in changes.skipped],
            "how": _requeued(services, dag, run_id, changes.run_states)}


# -- input ------------------------------------------------------------------------------------------


def _flag(body: dict[str, Any], name: str, dag_id: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise InvalidRequestError(f'"{name}" must be true or false, not {value!r}', dag_id)
    return value


def _task_ids(body: dict[str, Any], dag_id: str, *, required: bool) -> list[str] | None:
    value = body.get("task_ids")
    if value is None and not required:
        return None
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value) or (required and not value):
        raise InvalidRequestError('"task_ids" must be a list of task ids' + (" (at least one)" if required else
                                                                              " or null for every task"), dag_id)
    return value


# -- handlers ---------------------------------------------------------------------------------------


class RunsHandler(NbflowHandler):
    @web.authenticated
    @authorized
    async def get(self, dag_id: str) -> None:
        limit = self.int_argument("limit", 25, low=1, high=1000)
        self.reply(await self.services.call(list_runs, self.services, dag_id, limit))

    @web.authenticated
    @authorized
    async def post(self, dag_id: str) -> None:
        conf = self.json_body().get("conf")  # checked by the trigger: a JSON object, no NaN, within max_conf_bytes
        self.reply(await self.services.call(trigger, self.services, dag_id, conf), status=201)


class RunHandler(NbflowHandler):
    @web.authenticated
    @authorized
    async def get(self, dag_id: str, run_id: str) -> None:
        self.reply(await self.services.call(run_detail, self.services, dag_id, run_id))


class ClearHandler(NbflowHandler):
    @web.authenticated
    @authorized
    async def post(self, dag_id: str, run_id: str) -> None:
        body = self.json_body()
        task_ids = _task_ids(body, dag_id, required=False)
        downstream, only_failed = _flag(body, "downstream", dag_id), _flag(body, "only_failed", dag_id)
        self.reply(await self.services.call(clear, self.services, dag_id, run_id, task_ids, downstream, only_failed))


class MarkHandler(NbflowHandler):
    @web.authenticated
    @authorized
    async def post(self, dag_id: str, run_id: str) -> None:
        body = self.json_body()
        task_ids = _task_ids(body, dag_id, required=True)
        state = body.get("state")
        if not isinstance(state, str):
            raise InvalidRequestError('"state" must be "success" or "failed"', dag_id)
        downstream = _flag(body, "downstream", dag_id)
        self.reply(await self.services.call(mark, self.services, dag_id, run_id, task_ids, state, downstream))
