"""``run_notebook``: execute one notebook with parameters, on a kernel of its own, through papermill.

The steps: load the notebook, take a kernel (from the pool unless told otherwise), inject the
parameters (nbflow's own set-up runs silently first), run the cells with papermill's notebook client, write the
output notebook (also when a cell fails), read back the values recorded with ``nbflow.output``,
write the report. papermill's and nbclient's failures become nbflow errors in :func:`_execute`,
the one place that knows them.
"""

from __future__ import annotations

import os
import re
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

from nbflow.errors import NotebookCellError, NotebookKernelError, NotebookNotFoundError, NotebookTimeoutError
from nbflow.notebook.outputs import read_outputs
from nbflow.notebook.params import INJECTED_TAGS, inject
from nbflow.notebook.pool import (
    KernelPool,
    call_in_own_loop,
    default_pool,
    discard,
    start_kernel,
)
from nbflow.notebook.prestart import notebook_kernel
from nbflow.notebook.progress import CellHook, Progress
from nbflow.notebook.report import FORMATS, write_report

#: ``pool=`` default: the process's shared pool
DEFAULT_POOL: Any = object()


@dataclass
class NotebookResult:
    """What a notebook run produced."""

    #: the values the notebook recorded with ``nbflow.output``, by name
    outputs: dict[str, Any]
    output_path: str
    report_path: str | None
    #: code cells executed, nbflow's injected cells included
    cells: int
    seconds: float
    #: where the kernel came from: "warm" (the pool), "reused" or "cold" (started for this run)
    kernel: str = "cold"


class _Limits:
    """nbclient's ``timeout_func``: the time a cell may take, from ``cell_timeout`` and what is left of
    ``execution_timeout``; remembers which limit applies to the cell that runs."""

    def __init__(self, cell_timeout: float | None, execution_timeout: float | None, started: float) -> None:
        self.cell_timeout, self.execution_timeout, self.started = cell_timeout, execution_timeout, started
        self.cell: Any = None
        self.setting, self.limit = "cell_timeout", 0.0

    def __call__(self, cell: Any) -> float | None:
        self.cell = cell
        limits = []
        if self.cell_timeout:
            limits.append((float(self.cell_timeout), "cell_timeout", float(self.cell_timeout)))
        if self.execution_timeout:
            left = self.started + float(self.execution_timeout) - time.perf_counter()
            limits.append((max(left, 0.001), "execution_timeout", float(self.execution_timeout)))
        if not limits:
            return None
        seconds, self.setting, self.limit = min(limits)
        return seconds


def default_output_path(notebook: str) -> str:
    """Where a notebook run outside a task keeps its output: the artifacts folder."""
    from nbflow.settings import get_settings

    folder = get_settings().artifacts_folder / "notebooks" / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    return str(folder / os.path.basename(notebook))


def run_notebook(
    path: str | os.PathLike[str],
    *,
    parameters: dict[str, Any] | None = None,
    output_path: str | os.PathLike[str] | None = None,
    kernel_name: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
    report: str | None = None,
    report_hide_code: bool = False,
    cell_timeout: float | None = None,
    execution_timeout: float | None = None,
    progress: Progress | None = None,
    reuse_kernel: bool = False,
    pool: KernelPool | None = DEFAULT_POOL,
) -> NotebookResult:
    """Execute the notebook at ``path`` with ``parameters``; return its recorded outputs and paths.

    ``cwd`` defaults to the notebook's folder; ``output_path`` to a new folder under the artifacts
    folder. ``report="html"`` also writes an HTML rendering next to the output notebook (without the
    cells' code when ``report_hide_code``).
    ``pool=None`` starts a kernel for this run only. Raises :class:`NotebookCellError` when a cell
    raises and :class:`NotebookTimeoutError` when a limit runs out; the output notebook is kept.
    """
    started = time.perf_counter()
    notebook = os.path.abspath(os.fspath(path))
    if not os.path.isfile(notebook):
        raise NotebookNotFoundError(notebook)
    if report is not None and report not in FORMATS:
        raise ValueError(f"report={report!r} is not a format nbflow writes; use one of {', '.join(FORMATS)}")
    reuse_key = notebook if reuse_kernel else None
    if pool is DEFAULT_POOL:
        pool = default_pool()
    # The kernel is set aside (or starts) now, and comes up while papermill is imported and the
    # notebook read: both take about as long as a kernel start.
    claim = pool.claim(kernel_name or notebook_kernel(notebook) or "python3", reuse_key) if pool is not None else None
    try:
        from papermill.iorw import load_notebook_node

        output = os.path.abspath(os.fspath(output_path or default_output_path(notebook)))
        folder = os.path.dirname(output)
        os.makedirs(folder, exist_ok=True)
        stem = os.path.splitext(os.path.basename(output))[0]
        outputs_file = os.path.join(folder, f"{stem}.outputs.pickle")
        if os.path.exists(outputs_file):  # left by an earlier try of the same task
            os.remove(outputs_file)
        nb = load_notebook_node(notebook)
        kernel = kernel_name or nb.metadata.get("kernelspec", {}).get("name")
        if not kernel:
            # papermill refuses such a notebook; nbflow runs it on python3 and says so in the task's log
            print("nbflow: the notebook names no kernel (no kernelspec, no kernel_name=); running it on python3",
                  file=sys.stderr)
            kernel = "python3"
        if claim is not None and claim.kernel_name != kernel:
            claim.drop()
            claim = pool.claim(kernel, reuse_key)  # type: ignore[union-attr]
    except BaseException:
        if claim is not None:
            claim.drop()
        raise
    try:
        km, source = claim.take() if claim is not None else (start_kernel(kernel), "cold")
    except Exception as exc:
        _refuse_missing_kernel(exc, nb, notebook, output, kernel, parameters, folder, stem)
        raise
    reusable = False
    try:
        nb, setup = inject(
            nb, dict(parameters or {}), kernel_name=kernel, cwd=os.path.abspath(os.fspath(cwd or os.path.dirname(notebook))),
            outputs_file=outputs_file, pickle_file=os.path.join(folder, f"{stem}.parameters.pickle"),
            reset=source == "reused",
        )
        hook = CellHook(nb, progress)
        executed, reusable = call_in_own_loop(_execute, nb, notebook, output, km, hook,
                                              _Limits(cell_timeout, execution_timeout, started), setup)
    finally:
        if pool is not None:
            pool.release(km, kernel, reuse_key if reusable else None)
        else:
            discard(km)
    report_path = write_report(executed, output, report, hide_code=report_hide_code) if report else None
    return NotebookResult(read_outputs(outputs_file), output, report_path, hook.executed, time.perf_counter() - started, source)


def _refuse_missing_kernel(exc: Exception, nb: Any, notebook: str, output: str, kernel: str,
                           parameters: dict[str, Any] | None, folder: str, stem: str) -> None:
    """A kernel that is not installed: keep the output notebook with its parameters, as papermill
    does, and say which kernels there are. Any other failure to start one is left as it is."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    from papermill.iorw import write_ipynb

    if not isinstance(exc, NoSuchKernel):
        return
    injected, _ = inject(nb, dict(parameters or {}), kernel_name=kernel, cwd=os.path.dirname(notebook), outputs_file="",
                         pickle_file=os.path.join(folder, f"{stem}.parameters.pickle"))
    write_ipynb(injected, output)
    raise NotebookKernelError(notebook, kernel, sorted(KernelSpecManager().find_kernel_specs()), output) from exc


def _execute(nb: Any, notebook: str, output_path: str, km: Any, hook: CellHook, limits: _Limits,
             setup: str = "") -> tuple[Any, bool]:
    """Run ``nb`` on ``km`` and write it to ``output_path``: ``(executed notebook, kernel reusable)``.

    The one place where papermill's and nbclient's errors become nbflow's.
    """
    from nbclient.exceptions import CellTimeoutError
    from papermill.engines import NotebookExecutionManager
    from papermill.exceptions import PapermillExecutionError
    from papermill.execute import (
        ERROR_MARKER_TAG,
        prepare_notebook_metadata,
        raise_for_execution_errors,
        remove_error_markers,
    )
    from papermill.iorw import write_ipynb

    nb = remove_error_markers(prepare_notebook_metadata(nb, notebook, output_path))
    manager = NotebookExecutionManager(nb, output_path=None, progress_bar=False)
    manager.notebook_start()
    client = _client_class()(
        manager, km=km, kernel_name=km.kernel_name, stdout_file=sys.stdout, stderr_file=sys.stderr,
        on_cell_executed=hook, timeout_func=limits, interrupt_on_timeout=False,
    )
    client.nbflow_setup = setup
    try:
        client.execute()
    except CellTimeoutError as exc:
        manager.notebook_complete()
        write_ipynb(manager.nb, output_path)
        number, source = _user_cell(manager.nb, limits.cell)
        raise NotebookTimeoutError(notebook, number, source, limits.limit, limits.setting, output_path) from exc
    finally:
        if client.kc is not None:
            client.kc.stop_channels()
    manager.notebook_complete()
    try:
        raise_for_execution_errors(manager.nb, output_path)
    except PapermillExecutionError as exc:
        # the index is from before papermill added its error marker cells
        cells = [c for c in manager.nb.cells if ERROR_MARKER_TAG not in c.metadata.get("tags", [])]
        cell = cells[exc.cell_index]
        number, _ = _user_cell(manager.nb, cell)
        ename, evalue = _usage_error(cell) if not exc.evalue and exc.ename == "CellExecutionError" else (exc.ename, exc.evalue)
        raise NotebookCellError(notebook, number, exc.source, ename, evalue, output_path,
                                cell.get("execution_count"), _failing_line(exc.traceback)) from exc
    write_ipynb(manager.nb, output_path)
    return manager.nb, True


def _usage_error(cell: Any) -> tuple[str, str]:
    """IPython reports a wrong magic (``%nosuchmagic``) on stderr only, so nbclient's error is empty:
    the cell's stderr says what went wrong."""
    for output in cell.get("outputs", []):
        if output.get("name") == "stderr":
            text = "".join(output.get("text", "")).strip()
            name, _, value = text.partition(": ")
            if name.isidentifier() and value:
                return name, value
            if text:
                return "CellExecutionError", text
    return "CellExecutionError", "the cell failed without an error message"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CELL_LINE = re.compile(r"Cell In\[\d*\], line (\d+)")


def _failing_line(traceback: Any) -> int | None:
    """The line of the cell that raised: the last ``Cell In[n], line k`` frame of the traceback."""
    found = None
    for frame in traceback or []:
        for match in _CELL_LINE.finditer(_ANSI.sub("", str(frame))):
            found = int(match.group(1))
    return found


def _user_cell(nb: Any, cell: Any) -> tuple[int, str]:
    """``(number, source)`` of ``cell`` among the input notebook's code cells, counted from 1;
    0 for a cell nbflow injected."""
    number = 0
    for candidate in nb.cells:
        injected = bool(INJECTED_TAGS & set(candidate.metadata.get("tags", [])))
        if candidate.cell_type == "code" and not injected:
            number += 1
        if candidate is cell:
            return (0 if injected else number), candidate.source
    return 0, getattr(cell, "source", "")


_CLIENT: Any = None


def _client_class() -> Any:
    """papermill's notebook client, connecting faster to a kernel that is known to be up."""
    global _CLIENT
    if _CLIENT is not None:
        return _CLIENT
    from jupyter_core.utils import run_sync
    from nbclient.util import run_hook
    from papermill.clientwrap import PapermillNotebookClient

    class WarmKernelClient(PapermillNotebookClient):
        # jupyter_client's wait_for_ready ends by draining IOPub for 0.2 s, which is most of the time
        # a warm kernel needs for a short notebook; one request answered on the shell channel that
        # also shows up on IOPub proves the same: the kernel answers and our subscription receives.
        # nbflow's set-up is that request when there is one (one round trip rather than two).
        async def async_start_new_kernel_client(self) -> Any:
            assert self.km is not None
            self.kc = self.km.client()
            self.kc.start_channels()
            self.kc.allow_stdin = False
            setup = getattr(self, "nbflow_setup", "")
            if not setup or not await _run_silently(self.kc, setup, self.startup_timeout):
                await _until_ready(self.kc, self.startup_timeout)
            await run_hook(self.on_notebook_start, notebook=self.nb)
            return self.kc

        start_new_kernel_client = run_sync(async_start_new_kernel_client)

    _CLIENT = WarmKernelClient
    return _CLIENT


async def _run_silently(kc: Any, code: str, timeout: float) -> bool:
    """Run nbflow's set-up on the kernel before the notebook's cells: silent and outside the
    history, so it takes no execution count and leaves nothing in the output notebook.

    True when the kernel's IOPub messages for it were heard too, which proves our subscription
    receives (the notebook's first outputs cannot be lost); False when only its reply came (a
    subscription still joining), and readiness is then awaited the usual way."""
    from queue import Empty

    msg_id = kc.execute(code, silent=True, store_history=False, allow_stdin=False)
    deadline = time.monotonic() + timeout
    heard = False
    while True:
        if not heard:
            try:
                while not heard:
                    message = await kc.get_iopub_msg(timeout=0)
                    heard = message["parent_header"].get("msg_id") == msg_id
            except Empty:
                pass
        try:
            reply = await kc.get_shell_msg(timeout=0.01 if not heard else max(0.01, deadline - time.monotonic()))
        except Empty:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the kernel did not run nbflow's set-up within {timeout:g} s") from None
            continue
        if reply["parent_header"].get("msg_id") != msg_id:
            continue
        content = reply["content"]
        if content.get("status") != "ok":
            raise RuntimeError(f"nbflow's set-up failed on the kernel: {content.get('ename')}: {content.get('evalue')}")
        break
    if not heard:
        try:  # its "busy" status goes out before the reply and "idle" right after it
            while not heard:
                message = await kc.get_iopub_msg(timeout=0.05)
                heard = message["parent_header"].get("msg_id") == msg_id
        except Empty:
            pass
    return heard


async def _until_ready(kc: Any, timeout: float) -> None:
    from queue import Empty

    deadline = time.monotonic() + timeout
    while True:
        msg_id = kc.kernel_info()
        replied = heard = False
        wait_until = time.monotonic() + 0.25
        while time.monotonic() < wait_until and not (replied and heard):
            if not replied:
                try:
                    reply = await kc.get_shell_msg(timeout=0.01)
                    replied = reply["parent_header"].get("msg_id") == msg_id
                except Empty:
                    pass
            if not heard:
                try:
                    await kc.get_iopub_msg(timeout=0.01)
                    heard = True
                except Empty:
                    pass
        if replied and heard:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the kernel did not answer within {timeout:g} s")
