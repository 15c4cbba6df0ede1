"""Whole notebooks as tasks: ``NotebookOperator`` runs one through papermill with parameters.

The task's output is the dict of values the notebook recorded with ``nbflow.output(name, value)``;
downstream tasks take one with ``nb_task.output["name"]``. Parameter values may be outputs of
upstream tasks and arrive in the notebook as the same Python values.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, ClassVar

from nbflow.errors import DagDefinitionError, InvalidOptionError
from nbflow.operators.base import BaseOperator, duration_seconds

REPORTS = ("html",)


class NotebookOperator(BaseOperator):
    """Executes ``notebook`` with ``parameters`` on a fresh kernel.

    The executed notebook is kept at ``output_path`` (default
    ``$NBFLOW_HOME/artifacts/<dag>/<run_id>/<task_id>/<notebook file name>``) and, with
    ``report="html"``, rendered to HTML beside it (``report_hide_code=True``: outputs only, without the
    code, as nbconvert's ``--no-input``); both paths and one line per executed cell go to
    the task log, with what the cells print. ``cell_timeout`` limits each cell, ``execution_timeout``
    the whole notebook. ``reuse_kernel=True`` trades isolation for speed (see ``nbflow.notebook.pool``).
    """

    template_fields: ClassVar[Sequence[str]] = ("notebook", "parameters", "output_path", "cwd")
    kind: ClassVar[str] = "notebook"

    def __init__(
        self,
        *,
        notebook: str,
        parameters: dict[str, Any] | None = None,
        kernel_name: str | None = None,
        cwd: str | None = None,
        output_path: str | None = None,
        report: str | None = None,
        report_hide_code: bool = False,
        cell_timeout: float | None = None,
        reuse_kernel: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if report is not None and report not in REPORTS:
            raise DagDefinitionError(
                f"report={report!r} is not a report format; use one of {', '.join(REPORTS)} or None",
                self.dag_id, self.task_id,
            )
        self.notebook = os.fspath(notebook)
        self.parameters = dict(parameters or {})
        self.kernel_name = kernel_name
        self.cwd = cwd
        self.output_path = output_path
        if not isinstance(report_hide_code, bool):
            raise InvalidOptionError("report_hide_code", report_hide_code, "give True (the report shows the cells' "
                                     "outputs only, no code) or False", self.dag_id, self.task_id)
        self.report = report
        self.report_hide_code = report_hide_code
        # 0 would mean "no limit" to the executor: refused rather than read two ways
        self.cell_timeout = cell_timeout if cell_timeout is None else self._positive_seconds("cell_timeout", cell_timeout)
        self.reuse_kernel = reuse_kernel

    def _positive_seconds(self, name: str, value: Any) -> float:
        seconds = duration_seconds(value)
        if seconds is None or seconds <= 0:
            raise InvalidOptionError(name, value, "give more than 0 seconds (a number or a datetime.timedelta), "
                                     "or None for no limit", self.dag_id, self.task_id)
        return seconds

    def default_output_path(self, context: dict[str, Any]) -> str:
        from nbflow.paths import artifacts_folder, task_folder
        from nbflow.settings import get_settings

        folder = task_folder(artifacts_folder(get_settings().artifacts_folder), self.dag_id or "",
                             str(context.get("run_id") or "manual"), self.task_id)
        return str(folder / os.path.basename(self.notebook))

    def execute(self, context: dict[str, Any]) -> Any:
        from nbflow.notebook import run_notebook
        from nbflow.notebook.progress import ProgressFile, both, print_progress

        output_path = self.output_path or self.default_output_path(context)
        print(f"nbflow: notebook {os.path.abspath(self.notebook)}", flush=True)
        print(f"nbflow: output notebook {os.path.abspath(output_path)}", flush=True)
        result = run_notebook(
            self.notebook, parameters=self.parameters, output_path=output_path, kernel_name=self.kernel_name,
            cwd=self.cwd, report=self.report, report_hide_code=self.report_hide_code, cell_timeout=self.cell_timeout,
            execution_timeout=self.execution_timeout_seconds, progress=both(print_progress, ProgressFile(output_path)),
            reuse_kernel=self.reuse_kernel,
        )
        if result.report_path:
            print(f"nbflow: report {result.report_path}", flush=True)
        print(f"nbflow: notebook done: {result.cells} cells in {result.seconds:.2f} s ({result.kernel} kernel)", flush=True)
        return result.outputs

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["notebook"] = self.notebook
        return info
