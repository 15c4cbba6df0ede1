"""The ``%%dag`` cell magic and the ``%nbflow`` line magic.

Thin: each parses its arguments and calls the public API. Bad input raises ``UsageError`` with the
usage line, which IPython shows without a traceback.

``%%dag DAG_ID [--schedule CRON] ...`` runs the cell in the user namespace inside ``DAG(...)`` (the
line is parsed by :func:`nbflow.engine.discovery.parse_dag_line`, as for notebooks in ``dags_folder``),
validates the DAG, records it in the store with this notebook as its source, binds it to the name
``DAG_ID`` and shows it: the live graph widget, with an SVG picture for viewers without a kernel. Running the cell again builds the DAG again from scratch.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from nbflow.errors import ConfigError, DagDefinitionError, NbflowError

if TYPE_CHECKING:
    from nbflow.dag import DAG
    from nbflow.dagrun import DagRun

INTERACTIVE = "interactive"
EXECUTORS = ["inline", "thread", "process", "dask"]


class _Parser(argparse.ArgumentParser):
    """argparse that raises ``UsageError`` (with the usage line) instead of exiting the kernel."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message}\n{self.format_usage().strip()}")

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        raise UsageError((message or "").strip() or self.format_usage().strip())


def line_parser() -> argparse.ArgumentParser:
    """The arguments of ``%nbflow``."""
    parser = _Parser(prog="%nbflow", add_help=False,
                     usage="%(prog)s {list,test,run,backfill,runs,logs,next,scheduler,dashboard} ...")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    sub.add_parser("list", add_help=False, help="DAGs of this kernel and of dags_folder")
    p = sub.add_parser("test", add_help=False, help="run a DAG once now, in this kernel")
    p.add_argument("dag_id", metavar="DAG")
    p.add_argument("--date", metavar="D", help="logical date (default: now)")
    p.add_argument("--executor", choices=EXECUTORS)
    p = sub.add_parser("run", add_help=False, help="a manual run now, in this kernel")
    p.add_argument("dag_id", metavar="DAG")
    p.add_argument("--date", metavar="D", help="logical date (default: now)")
    p.add_argument("--conf", metavar="JSON", help="a JSON object given to the run")
    p.add_argument("--executor", choices=EXECUTORS)
    p = sub.add_parser("backfill", add_help=False, help="every scheduled time from START to END")
    p.add_argument("dag_id", metavar="DAG")
    p.add_argument("start", metavar="START")
    p.add_argument("end", metavar="END")
    p.add_argument("--reprocess", choices=["none", "failed", "all"], default="none")
    p.add_argument("--executor", choices=EXECUTORS)
    p = sub.add_parser("runs", add_help=False, help="a DAG's runs, newest first")
    p.add_argument("dag_id", metavar="DAG")
    p.add_argument("--limit", type=int, default=20)
    p = sub.add_parser("logs", add_help=False, help="a task's log (latest run unless --run-id)")
    p.add_argument("dag_id", metavar="DAG")
    p.add_argument("task_id", metavar="TASK")
    p.add_argument("--run-id", metavar="RUN")
    p.add_argument("--try", dest="try_number", type=int, metavar="N")
    p = sub.add_parser("next", add_help=False, help="the next scheduled times")
    p.add_argument("dag_id", metavar="DAG")
    p.add_argument("-n", type=int, default=5)
    p.add_argument("--after", metavar="D")
    p = sub.add_parser("scheduler", add_help=False, help="the scheduler thread of this kernel")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("--executor", choices=EXECUTORS)
    sub.add_parser("dashboard", add_help=False, help="every DAG: pause toggles, recent runs, import errors")
    return parser


def notebook_path(user_ns: dict[str, Any], environ: Any = os.environ) -> str:
    """The path of the notebook this kernel runs, when the front end says it; else ``"interactive"``.

    ipykernel puts ``JPY_SESSION_NAME`` (set by the Jupyter server, relative to its root) in
    ``__session__``; VS Code sets ``__vsc_ipynb_file__``.
    """
    for candidate in (user_ns.get("__vsc_ipynb_file__"), user_ns.get("__session__"), environ.get("JPY_SESSION_NAME")):
        if not isinstance(candidate, str) or not candidate.endswith(".ipynb"):
            continue
        path = Path(candidate)
        if path.is_absolute():
            return str(path)
        for guess in (Path.cwd() / path, Path.cwd() / path.name):  # the kernel starts in the notebook's folder
            if guess.exists():
                return str(guess.resolve())
        return candidate
    return INTERACTIVE


def _cell_line(exc: BaseException, filename: str) -> str:
    """`` (cell line N)`` for the last line of the cell on the traceback, if it is there."""
    import traceback

    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
    return f" (cell line {lines[-1] + 1})" if lines else ""


def _local(value: Any) -> str:
    return "-" if value is None else value.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


class RunList(list):  # type: ignore[type-arg]
    """The runs of a backfill: a list of :class:`DagRun` that shows as a table."""

    def __repr__(self) -> str:
        return _table(["run_id", "state", "logical date (local)"],
                      [[r.run_id, r.state.value, _local(r.logical_date)] for r in self])

    def _repr_html_(self) -> str:
        from html import escape

        rows = "".join(f"<tr><td><code>{escape(r.run_id)}</code></td><td>{escape(r.state.value)}</td>"
                       f"<td>{escape(_local(r.logical_date))}</td></tr>" for r in self)
        return (f"<table><tr><th>run</th><th>state</th><th>logical date (local)</th></tr>{rows}</table>"
                f"<div>{len(self)} run(s)</div>")


@magics_class
class NbflowMagics(Magics):
    """``%%dag`` and ``%nbflow``."""

    def __init__(self, shell: Any = None) -> None:
        super().__init__(shell)
        #: the DAGs defined by ``%%dag`` in this kernel, by id (a re-run replaces its entry)
        self.defined: dict[str, DAG] = {}

    # -- %%dag ------------------------------------------------------------------------------------

    @cell_magic("dag")
    def dag(self, line: str, cell: str) -> None:
        """%%dag DAG_ID [--schedule CRON] [--timezone TZ] [--start DATE] [--catchup] [--tags A,B]
        [--retries N] [--owner NAME]

        Define a DAG from the cell: every task made in the cell joins it.
        """
        from IPython.display import display

        from nbflow.engine.discovery import exec_dag_cell, parse_dag_line

        __tracebackhide__ = True  # IPython shows the cell's frames, not the magic's
        try:
            parse_dag_line(line)  # bad arguments stop here, before anything runs
        except DagDefinitionError as exc:
            raise UsageError(str(exc)) from None
        source = self.shell.transform_cell(cell)
        filename = self.shell.compile.cache(source, self.shell.execution_count, raw_code=cell)
        code = compile(source, filename, "exec", dont_inherit=True)
        fileloc = notebook_path(self.shell.user_ns)
        try:
            built = exec_dag_cell(line, code, self.shell.user_ns, fileloc=fileloc)
        except DagDefinitionError as exc:  # a cycle, a duplicate task id: say what, not how nbflow found it
            raise UsageError(f"{exc}{_cell_line(exc, filename)}\nNothing was registered; fix the cell and run it again.") from None
        except ConfigError as exc:  # nbflow's settings (read for the default time zone), not the cell
            raise UsageError(f"{exc}\nNothing was registered.") from None
        self._follow_rename(built)
        self.defined[built.dag_id] = built
        if built.dag_id.isidentifier():
            self.shell.user_ns[built.dag_id] = built
        else:
            print(f"{built.dag_id!r} is not a Python name, so no variable holds the DAG; "
                  f"use %nbflow ... {built.dag_id}, or an id like {built.dag_id.replace('-', '_').replace('.', '_')!r}")
        self._register(built)
        display(built)

    def _follow_rename(self, built: DAG) -> None:
        """A kernel learns its notebook's path when it starts; after a rename in Jupyter that path is
        gone, while the server has moved the DAG's row to the new one (nbflow.jupyter.server.renames).
        Keep the new path, and remember it for the cells that follow."""
        fileloc = str(built.fileloc or "")
        if not fileloc.endswith(".ipynb") or os.path.exists(fileloc):
            return
        from nbflow.store import Store

        try:
            with Store.open() as store:
                row = store.get_dag(built.dag_id)
        except NbflowError:
            return
        recorded = (row or {}).get("fileloc") or ""
        if recorded.endswith(".ipynb") and recorded != fileloc and os.path.exists(recorded):
            built.fileloc = recorded
            self.shell.user_ns["__session__"] = recorded

    @staticmethod
    def _register(built: DAG) -> None:
        from nbflow.engine.sync import sync_dag
        from nbflow.store import Store

        try:
            with Store.open() as store:
                built.source_kind = "notebook"
                sync_dag(store, built, source_kind="notebook")
        except NbflowError as exc:  # the DAG is usable in the kernel even if the store is not
            print(f"nbflow: {built.dag_id} is defined but could not be recorded in the store: {exc}", file=sys.stderr)

    # -- %nbflow ----------------------------------------------------------------------------------

    @line_magic("nbflow")
    def nbflow(self, line: str) -> Any:
        """%nbflow list | test DAG [--date D] | run DAG | backfill DAG START END | runs DAG |
        logs DAG TASK | next DAG | scheduler start|stop|status | dashboard
        """
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"{exc}\n{line_parser().format_usage().strip()}") from None
        args = line_parser().parse_args(words)
        try:
            return getattr(self, f"_cmd_{args.command}")(args)
        except NbflowError as exc:
            raise UsageError(str(exc)) from None

    def find_dag(self, dag_id: str) -> DAG:
        """A DAG of this kernel (``%%dag`` or bound to a name), else of ``dags_folder``."""
        if dag_id in self.defined:
            return self.defined[dag_id]
        for value in self._kernel_dags():
            if value.dag_id == dag_id:
                return value
        bag = self._folder()
        if dag_id in bag.dags:
            return bag.dags[dag_id]
        known = sorted({*self.defined, *(d.dag_id for d in self._kernel_dags()), *bag.dags})
        hint = f"; known: {', '.join(known)}" if known else "; define one with %%dag or put a DAG file in dags_folder"
        raise UsageError(f"no DAG {dag_id!r} in this kernel or in dags_folder{hint}")

    def _kernel_dags(self) -> list[DAG]:
        from nbflow.dag import DAG

        return [v for k, v in list(self.shell.user_ns.items()) if isinstance(v, DAG) and not k.startswith("_")]

    @staticmethod
    def _folder() -> Any:
        from nbflow.engine.discovery import DagBag, collect
        from nbflow.settings import get_settings

        folder = Path(get_settings().dags_folder)
        return collect([folder]) if folder.is_dir() else DagBag()

    def _cmd_list(self, args: argparse.Namespace) -> None:
        kernel: dict[str, DAG] = {d.dag_id: d for d in self._kernel_dags()}
        kernel.update(self.defined)
        bag = self._folder()
        rows = []
        for where, dags in (("kernel", kernel), ("dags_folder", bag.dags)):
            for dag_id, d in sorted(dags.items()):
                if where == "dags_folder" and dag_id in kernel:
                    continue
                rows.append([dag_id, d.timetable.description, d.describe()["timezone"], str(len(d.task_dict)),
                             where, str(d.fileloc or "-")])
        if not rows:
            print("no DAGs: define one with %%dag, or put a DAG file in dags_folder")
        else:
            print(_table(["dag_id", "schedule", "timezone", "tasks", "from", "file"], rows))
        for failure in bag.failures.values():
            print(f"failed to load {failure.fileloc}: {failure.summary}")

    def _cmd_test(self, args: argparse.Namespace) -> DagRun:
        return self.find_dag(args.dag_id).test(logical_date=args.date, executor=args.executor)

    def _cmd_run(self, args: argparse.Namespace) -> DagRun:
        from nbflow.engine.runs import run_dag

        conf: Any = {}
        if args.conf:
            try:
                conf = json.loads(args.conf)
            except json.JSONDecodeError as exc:
                raise UsageError(f"--conf is not valid JSON ({exc.msg}): {args.conf}") from None
        return run_dag(self.find_dag(args.dag_id), logical_date=args.date, conf=conf, executor=args.executor,
                       run_type="manual", progress=None)

    def _cmd_backfill(self, args: argparse.Namespace) -> RunList:
        runs = self.find_dag(args.dag_id).backfill(args.start, args.end, reprocess=args.reprocess, executor=args.executor)
        return RunList(runs)

    def _cmd_runs(self, args: argparse.Namespace) -> None:
        from nbflow.store import Store

        with Store.open() as store:
            rows = store.list_runs(args.dag_id, limit=args.limit)
        if not rows:
            print(f"no runs of {args.dag_id}")
            return
        print(_table(["run_id", "type", "state", "logical date (local)", "ended (local)"],
                     [[r["run_id"], r["run_type"], r["state"], _local(r["logical_date"]), _local(r["end_date"])]
                      for r in rows]))

    def _cmd_logs(self, args: argparse.Namespace) -> None:
        from nbflow.store import Store, queries

        with Store.open() as store:
            run = queries.run_or_latest(store, args.dag_id, args.run_id)
            if run is None:
                raise UsageError(f"no run {args.run_id or '(latest)'} of {args.dag_id}: see %nbflow runs {args.dag_id}")
            tries = store.get_tries(run["id"], args.task_id)
        if args.try_number:
            tries = [t for t in tries if t["try_number"] == args.try_number]
        if not tries:
            print(f"task {args.task_id} has no finished try in run {run['run_id']}")
            return
        for row in sorted(tries, key=lambda t: t["try_number"]):
            print(f"==> {run['run_id']} {args.task_id} try {row['try_number']}: {row['state']}")
            path = row.get("log_path")
            if path and Path(path).exists():
                print(Path(path).read_text(encoding="utf-8"), end="")
            else:
                print("(no log)")

    def _cmd_next(self, args: argparse.Namespace) -> None:
        from nbflow.timetables import timezone_name

        found = self.find_dag(args.dag_id)
        times = found.next_runs(args.n, after=args.after)
        if not times:
            print(f"{found.dag_id} ({found.timetable.description}) has no scheduled time ahead")
            return
        zone = timezone_name(found.timezone)
        print(f"{found.dag_id}: {found.timetable.description}")
        print(_table([f"in {zone}", "local"],
                     [[t.strftime("%Y-%m-%d %H:%M %Z"), _local(t)] for t in times]))

    def _cmd_dashboard(self, args: argparse.Namespace) -> Any:
        from nbflow.jupyter.dashboard import Dashboard

        return Dashboard()

    def _cmd_scheduler(self, args: argparse.Namespace) -> None:
        from nbflow.engine import scheduler

        if args.action == "start":
            running = scheduler.start(executor=args.executor)
            print(f"scheduler {running.host_id} runs in this kernel; it schedules the DAGs defined here. "
                  "Stop it with %nbflow scheduler stop")
        elif args.action == "stop":
            scheduler.stop()
            print("scheduler stopped")
        else:
            state = scheduler.status()
            if not state.get("running"):
                print("no scheduler runs in this kernel: start one with %nbflow scheduler start")
                return
            for key, value in state.items():
                print(f"{key}: {value}")


def load_ipython_extension(ipython: Any) -> None:
    ipython.register_magics(NbflowMagics)
