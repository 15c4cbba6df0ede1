"""``notebooks/parameters`` and ``schedule``: a notebook of the server's file tree, read for the
parameters it takes, and put on a cron schedule as a one-task DAG (what ``nbflow schedule`` does).

Notebook paths are relative to the server's root directory, as JupyterLab's file browser has them,
and may not leave it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from nbflow.errors import InvalidRequestError, ScheduleError
from nbflow.jupyter.server import files
from nbflow.jupyter.server import serialize as out
from nbflow.jupyter.server.base import NbflowHandler

if TYPE_CHECKING:
    from pathlib import Path

    from nbflow.jupyter.server.services import Services


def notebook_path(services: Services, relative: str) -> Path:
    path = files.in_root_dir(services.root_dir, relative, "notebook")
    if path.suffix != ".ipynb":
        raise InvalidRequestError(f"{relative} is not a notebook (.ipynb)")
    return path


def parameters(services: Services, relative: str) -> dict[str, Any]:
    from nbflow.notebook.signature import notebook_signature

    path = notebook_path(services, relative)
    signature = notebook_signature(path).as_dict()
    return {"path": files.relative_to_root(path, services.root_dir), **signature}


def schedule(services: Services, body: dict[str, Any]) -> dict[str, Any]:
    from nbflow.notebook.schedule import schedule_notebook

    path = notebook_path(services, _text(body, "path", required=True) or "")
    cron = _text(body, "cron", required=True) or ""
    report = _text(body, "report") or "html"
    catalog = services.catalog
    with catalog.loading():
        try:
            result = schedule_notebook(path, cron, timezone=_text(body, "timezone"), parameters=body.get("parameters"),
                                       report=report, dag_id=_text(body, "dag_id"), settings=services.settings,
                                       store=services.store)
        except ScheduleError as exc:  # said to the schedule dialog, whose field takes a cron
            from nbflow.jupyter.server.status import for_cron_field

            raise for_cron_field(exc) from None
    dag = result.dag
    utc, local = out.times(dag.next_runs(5), dag.timezone)
    return {"dag_id": result.dag_id, "fileloc": result.fileloc,
            "schedule_text": out.schedule_words(dag.schedule, dag.timetable.description),
            "next_runs": utc, "next_runs_local": local}


def _text(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise InvalidRequestError(f'"{name}" is required')
        return None
    if not isinstance(value, str):
        raise InvalidRequestError(f'"{name}" must be a string, not {value!r}')
    return value


# -- handlers ---------------------------------------------------------------------------------------


class NotebookParametersHandler(NbflowHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        relative = self.get_argument("path", "")
        self.reply(await self.services.call(parameters, self.services, relative))


class ScheduleHandler(NbflowHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body()
        self.reply(await self.services.call(schedule, self.services, body), status=201)
