"""The URL table of the REST API, under ``{base_url}nbflow/api/`` (the contract the JupyterLab
extension is written against is listed in nbflow's README, section JupyterLab)."""

from __future__ import annotations

from typing import Any

from nbflow.jupyter.server.assets import AssetEventsHandler, AssetsHandler
from nbflow.jupyter.server.dags import DagHandler, DagsHandler, GraphHandler, GridHandler, NextRunsHandler
from nbflow.jupyter.server.notebooks import NotebookParametersHandler, ScheduleHandler
from nbflow.jupyter.server.runs import ClearHandler, MarkHandler, RunHandler, RunsHandler
from nbflow.jupyter.server.source import DagSourceHandler
from nbflow.jupyter.server.status import (
    CronHandler,
    EventsHandler,
    ImportErrorsHandler,
    SchedulerHandler,
    TimezonesHandler,
    UnknownHandler,
)
from nbflow.jupyter.server.tasks import LogHandler, NotebookHandler, OutputHandler, ReportHandler, TaskInstanceHandler
from nbflow.jupyter.server.vault import ConnectionHandler, ConnectionsHandler, VariableHandler, VariablesHandler

PREFIX = "nbflow/api"
_PART = r"([^/]+)"
_DAG = f"dags/{_PART}"
_RUN = f"{_DAG}/runs/{_PART}"
_TASK = f"{_RUN}/tasks/{_PART}"

ROUTES: list[tuple[str, type]] = [
    ("dags", DagsHandler),
    (_DAG, DagHandler),
    (f"{_DAG}/next", NextRunsHandler),
    (f"{_DAG}/graph", GraphHandler),
    (f"{_DAG}/grid", GridHandler),
    (f"{_DAG}/source", DagSourceHandler),
    (f"{_DAG}/runs", RunsHandler),
    (_RUN, RunHandler),
    (f"{_RUN}/clear", ClearHandler),
    (f"{_RUN}/mark", MarkHandler),
    (_TASK, TaskInstanceHandler),
    (f"{_TASK}/log", LogHandler),
    (f"{_TASK}/output", OutputHandler),
    (f"{_TASK}/notebook", NotebookHandler),
    (f"{_TASK}/report", ReportHandler),
    ("import_errors", ImportErrorsHandler),
    ("scheduler", SchedulerHandler),
    ("cron", CronHandler),
    ("timezones", TimezonesHandler),
    ("notebooks/parameters", NotebookParametersHandler),
    ("schedule", ScheduleHandler),
    ("events", EventsHandler),
    ("connections", ConnectionsHandler),
    (f"connections/{_PART}", ConnectionHandler),
    ("variables", VariablesHandler),
    (f"variables/{_PART}", VariableHandler),
    ("assets", AssetsHandler),
    ("assets/events", AssetEventsHandler),
]


def handlers() -> list[tuple[str, type, dict[str, Any]]]:
    """Tornado rules, relative to the server's base URL; anything else under the prefix is a JSON 404."""
    rules: list[tuple[str, type, dict[str, Any]]] = [(f"/{PREFIX}/{pattern}/?$", handler, {}) for pattern, handler in ROUTES]
    rules.append((f"/{PREFIX}/(.*)", UnknownHandler, {}))
    return rules
