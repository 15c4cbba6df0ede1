"""``dags/{dag}/runs/{run}/tasks/{task}``: one task instance, its log (read on from an offset, to
follow a running task), its output, and a notebook task's executed notebook and HTML report.

Every file is served only from inside ``NBFLOW_HOME`` (see :mod:`nbflow.jupyter.server.files`),
whatever path the store holds. Notebooks and reports are sent with a Content-Security-Policy that
sandboxes them: a report is a page of its own, with no scripts and no access to JupyterLab.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from nbflow.errors import NotFoundError
from nbflow.jupyter.server import files
from nbflow.jupyter.server import serialize as out
from nbflow.jupyter.server.base import NbflowHandler
from nbflow.jupyter.server.runs import find_run
from nbflow.outputs import load_json, stored_preview
from nbflow.store import queries

if TYPE_CHECKING:
    from nbflow.jupyter.server.services import Services

#: states after which a task's current try writes no more to its log
OVER = ("success", "failed", "skipped", "upstream_failed", "removed", "up_for_retry")
#: a sandboxed page: no scripts, no plugins, its own origin; inline styles and data images still show
SANDBOX_CSP = ("sandbox; default-src 'none'; style-src 'unsafe-inline' data:; img-src data: blob:; "
               "font-src data:; frame-ancestors 'self'")


def find_task(services: Services, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> queries.TaskInstanceDetail:
    """The task instance (instance ``map_index`` of a mapped task) with its tries and output; an
    unknown DAG, run, task or instance is a 404 naming it."""
    find_run(services, dag_id, run_id)
    return queries.task_instance_detail(services.store, dag_id, run_id, task_id, map_index)


def _artifact(services: Services, row: dict[str, Any]) -> Path | None:
    """The output's file, checked to be inside NBFLOW_HOME: a row pointing elsewhere is refused
    even where the file would not be read."""
    if not row.get("artifact_path"):
        return None
    return files.inside(row["artifact_path"], services.roots, "output artifact")


def _notebook_paths(services: Services, detail: queries.TaskInstanceDetail) -> tuple[str | None, str | None]:
    ti = detail.ti
    return queries.notebook_files(services.settings.artifacts_folder, ti["dag_id"], ti["run_id"], ti["task_id"],
                                  detail.log_paths)


def task_detail(services: Services, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
    from nbflow.notebook.progress import read_progress

    detail = find_task(services, dag_id, run_id, task_id, map_index)
    ti = detail.ti
    kind = queries.task_kind(services.store, dag_id, task_id)
    result = {"dag_id": dag_id, "run_id": run_id, **out.task_instance(ti), "kind": kind, "operator": ti.get("operator"),
              "tries": [out.try_row(t) for t in detail.tries], "output_preview": None, "notebook": None,
              "progress": None}
    if detail.instances:  # a mapped task: its instances, by map index
        result["instances"] = [out.task_instance(row) for row in detail.instances]
    if detail.output is not None:
        # the preview stored with the output; the server never unpickles (that would run its code)
        shown = stored_preview(detail.output)
        result["output_preview"] = shown.line()
        result["output"] = shown.as_dict()
    if kind == "notebook" or ti.get("operator") == "NotebookOperator":
        output, report = _notebook_paths(services, detail)
        if output is not None:
            result["notebook"] = {"output_path": output, "report_path": report,
                                  "lab_path": files.relative_to_root(output, services.root_dir)}
            result["progress"] = read_progress(output)
    return result


def task_log(services: Services, dag_id: str, run_id: str, task_id: str, try_number: int | None,
             offset: int, map_index: int = -1) -> dict[str, Any]:
    """The log of one try from byte ``offset``: poll again with the returned offset until
    ``complete`` (the try is over and everything was read)."""
    detail = find_task(services, dag_id, run_id, task_id, map_index)
    ti = detail.ti
    current = ti.get("try_number") or 0
    number = current if try_number is None else try_number
    if try_number is not None and not 1 <= number <= max(current, 1):
        raise NotFoundError(f"task '{task_id}' of run '{run_id}' has no try {number}; "
                            f"its tries are 1 to {current}" if current else f"task '{task_id}' has not run yet")
    if number == current:
        path = ti.get("log_path")
        over = ti["state"] in OVER
    else:
        path = next((t.get("log_path") for t in detail.tries if t["try_number"] == number), None)
        over = True
    if path is None:
        return {"text": "", "offset": offset, "complete": (over and current > 0) or number < current, "path": None}
    resolved = files.inside(path, services.roots, "log")
    if not resolved.is_file():
        return {"text": "", "offset": offset, "complete": over, "path": str(resolved)}
    text, after, at_end = files.read_from(resolved, offset)
    return {"text": text, "offset": after, "complete": over and at_end, "path": str(resolved)}


def task_output(services: Services, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
    row = find_task(services, dag_id, run_id, task_id, map_index).output
    if row is None:
        raise NotFoundError(f"task '{task_id}' of run '{run_id}' has no output: it has not succeeded, or returned nothing")
    artifact = _artifact(services, row)
    shown = stored_preview(row)
    value = None
    if shown.kind == "json":  # the full value, read as JSON; a pickle is only ever previewed
        found, value = load_json(row, artifact)
        if not found:
            raise NotFoundError(f"the output file {artifact} of task '{task_id}' is gone (deleted after the run?)")
    return {"value": value, **shown.as_dict()}


def notebook_file(services: Services, dag_id: str, run_id: str, task_id: str, as_html: bool) -> tuple[str, str]:
    """(content type, body) of the executed notebook, as JSON or rendered to HTML."""
    output, _report = _notebook_paths(services, find_task(services, dag_id, run_id, task_id))
    if output is None:
        raise NotFoundError(f"task '{task_id}' of run '{run_id}' has no executed notebook")
    path = _existing(files.inside(output, services.roots, "output notebook"))
    if as_html:
        from nbflow.notebook.report import notebook_html

        return "text/html; charset=UTF-8", notebook_html(str(path))
    text = path.read_text(encoding="utf-8")
    json.loads(text)  # a half-written notebook is not handed out as one
    return "application/x-ipynb+json", text


def report_file(services: Services, dag_id: str, run_id: str, task_id: str) -> str:
    _output, report = _notebook_paths(services, find_task(services, dag_id, run_id, task_id))
    if report is None:
        raise NotFoundError(f"task '{task_id}' of run '{run_id}' has no HTML report (is its report= 'html'?)")
    return _existing(files.inside(report, services.roots, "report")).read_text(encoding="utf-8")


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise NotFoundError(f"{path} is gone (deleted after the run?)")
    return path


# -- handlers ---------------------------------------------------------------------------------------


class TaskInstanceHandler(NbflowHandler):
    @web.authenticated
    @authorized
    async def get(self, dag_id: str, run_id: str, task_id: str) -> None:
        self.reply(await self.services.call(task_detail, self.services, dag_id, run_id, task_id, self._map_index()))


class LogHandler(NbflowHandler):
    @web.authenticated
    @authorized
    async def get(self, dag_id: str, run_id: str, task_id: str) -> None:
        # no try, or try=0, is the current one (a task that has not run yet has try number 0)
        try_number = self.int_argument("try", 0, low=0, high=100_000) or None
        offset = self.int_argument("offset", 0, low=0, high=2**53)
        self.reply(await self.services.call(task_log, self.services, dag_id, run_id, task_id, try_number, offset,
                                            self._map_index()))


class OutputHandler(NbflowHandler):
    @web.authenticated
    @authorized
    async def get(self, dag_id: str, run_id: str, task_id: str) -> None:
        self.reply(await self.services.call(task_output, self.services, dag_id, run_id, task_id, self._map_index()))


class _SandboxedFileHandler(NbflowHandler):
    """Sends a page of its own under a sandboxing Content-Security-Policy (errors stay JSON)."""

    @property
    def content_security_policy(self) -> str:
        return SANDBOX_CSP

    def send(self, content_type: str, body: str) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.finish(body, set_content_type=content_type)


class NotebookHandler(_SandboxedFileHandler):
    @web.authenticated
    @authorized
    async def get(self, dag_id: str, run_id: str, task_id: str) -> None:
        as_html = self.get_argument("format", "ipynb") == "html"
        content_type, body = await self.services.call(notebook_file, self.services, dag_id, run_id, task_id, as_html)
        self.send(content_type, body)


class ReportHandler(_SandboxedFileHandler):
    @web.authenticated
    @authorized
    async def get(self, dag_id: str, run_id: str, task_id: str) -> None:
        self.send("text/html; charset=UTF-8", await self.services.call(report_file, self.services, dag_id, run_id, task_id))
