"""What the command modules share: settings, the store, finding DAGs, printing times and runs."""

from __future__ import annotations

import argparse
import gc
import json
import re
import sys
from pathlib import Path
from collections.abc import Callable
from typing import Any


def _settings() -> Any:
    from nbflow.settings import get_settings

    return get_settings()


def _open_store() -> Any:
    from nbflow.store import Store

    return Store.open(_settings())


def _plural(count: int, word: str, plural: str | None = None) -> str:
    """``1 task``, ``2 tasks``; ``plural`` for words that do not just take an s."""
    return f"{count} {word if count == 1 else plural or word + 's'}"


def _roots(args: argparse.Namespace) -> list[Path]:
    """What the command loads DAGs from: the ``-f`` paths, else dags_folder."""
    paths = [Path(p) for p in getattr(args, "file", None) or []]
    return paths or [Path(_settings().dags_folder)]


def _bag(args: argparse.Namespace, *, summary: bool = False, meanwhile: Callable[[], object] | None = None) -> Any:
    """The DAGs of :func:`_roots`. With ``summary``, files that fail are summed up in one line on
    stderr rather than one line each (``nbflow dags list-import-errors`` has them all); a command
    asked for a DAG that did not load says so in its one error line instead (:func:`_missing_dag`).
    ``meanwhile`` runs while the files load in other processes (a command's own imports)."""
    from nbflow.engine.dagparsing import DagFileParser
    from nbflow.engine.discovery import collect

    roots = _roots(args)
    if not getattr(args, "file", None):
        roots[0].mkdir(parents=True, exist_ok=True)
    # each file in a process of its own
    bag = collect(roots, load=DagFileParser(_settings().dag_file_timeout, meanwhile=meanwhile))
    if summary and bag.failures:
        more = "".join(f" -f {path}" for path in getattr(args, "file", None) or [])
        print(f"{_plural(len(bag.failures), 'DAG file')} failed to load: nbflow dags list-import-errors{more}",
              file=sys.stderr)
    return bag


def _find_dag(args: argparse.Namespace, meanwhile: Callable[[], object] | None = None) -> Any:
    bag = _bag(args, meanwhile=meanwhile)
    if args.dag_id not in bag.dags:
        raise _missing_dag(args, bag, args.dag_id)
    return bag.dags[args.dag_id]


def _require_dag(args: argparse.Namespace, store: Any) -> dict[str, Any]:
    """The store's row of ``args.dag_id`` (its definition at least). A DAG the store does not know
    yet is looked for in dags_folder (it is recorded when a scheduler or a command first loads it);
    one that is in neither is an error saying why."""
    row = store.get_dag(args.dag_id)
    if row is None:
        bag = _bag(args)
        if args.dag_id not in bag.dags:
            raise _missing_dag(args, bag, args.dag_id)
        return {"dag_id": args.dag_id, "definition": bag.dags[args.dag_id].describe()}
    return row  # type: ignore[no-any-return]


def _stalled_schedulers(store: Any) -> list[dict[str, Any]]:
    """Scheduler hosts of this machine whose process runs but whose heartbeat is older than
    host_stale_after: a store locked by another process keeps a live scheduler from writing its
    heartbeat, and such a scheduler must not pass for "no scheduler is running". Each row gets
    ``silent_for``, the seconds since its last heartbeat."""
    import socket
    from datetime import datetime, timezone

    from nbflow.engine.scheduler import OWN_RUNS_ONLY_KINDS, pid_alive

    now, hostname, limit = datetime.now(timezone.utc), socket.gethostname(), _settings().host_stale_after
    stalled = []
    for host in store.list_hosts(state="running"):
        beat = host.get("heartbeat_at")
        silent = (now - beat).total_seconds() if beat is not None else float("inf")
        if (host["kind"] not in OWN_RUNS_ONLY_KINDS and host["hostname"] == hostname and silent >= limit
                and pid_alive(host["pid"])):
            stalled.append({**host, "silent_for": silent})
    return stalled


def _describe_stalled(host: dict[str, Any]) -> str:
    silent = "never written a heartbeat" if host["silent_for"] == float("inf") else (
        f"written no heartbeat for {host['silent_for']:.0f} s")
    return (f"the {host['kind']} scheduler {host['host_id']} (pid {host['pid']}) is running but has {silent}: "
            "the store is or was busy (locked by another process), or the scheduler is stuck")


def _positive(value: int | None, option: str, what: str, dag_id: str | None = None) -> None:
    from nbflow.errors import InvalidRequestError

    if value is not None and value < 1:
        raise InvalidRequestError(f"{option} takes {what} from 1, not {value}", dag_id)


def _within(path: str | Path, roots: list[Path]) -> bool:
    resolved = Path(path).resolve()
    return any(resolved == root.resolve() or resolved.is_relative_to(root.resolve()) for root in roots)


def _not_loaded(row: dict[str, Any], bag: Any, roots: list[Path]) -> str:
    """Why a DAG the store knows is not among the DAGs loaded from ``roots``, in a few words."""
    fileloc = row.get("fileloc")
    if not fileloc or not str(fileloc).endswith((".py", ".ipynb")):
        return "not in dags_folder"  # built in a notebook kernel or a script, never in a DAG file
    if str(Path(fileloc).resolve()) in bag.failures:
        return "file failed to load"
    if not Path(fileloc).exists():
        return "file missing"
    if not _within(fileloc, roots):
        return "not in dags_folder"
    return "no longer in its file"


def _stored_dag(dag_id: str) -> dict[str, Any] | None:
    """The store's row of ``dag_id``, only to explain why it cannot be loaded: a store that cannot
    be read leaves the explanation out rather than hiding the real answer."""
    from nbflow.errors import StoreError

    try:
        store = _open_store()
    except StoreError:
        return None
    try:
        return store.get_dag(dag_id)  # type: ignore[no-any-return]
    except StoreError:
        return None
    finally:
        store.close()


def _missing_dag(args: argparse.Namespace, bag: Any, dag_id: str) -> Exception:
    """The error for a DAG id that did not load: its file failed (and why), is missing, lies outside
    dags_folder, or no DAG has that id."""
    from nbflow.errors import DagImportError, DagNotFoundError

    def failed(failure: Any) -> Exception:
        return DagImportError(failure.fileloc, failure.summary, failure.traceback, dag_id=dag_id)

    # A DAG definition error (a cycle, a bad schedule) names the DAG in the file's error.
    for failure in bag.failures.values():
        if f"DAG '{dag_id}'" in failure.summary:
            return failed(failure)
    roots = _roots(args)
    row = _stored_dag(dag_id)
    if row is not None:
        status, fileloc = _not_loaded(row, bag, roots), row.get("fileloc")
        where = " and ".join(str(root) for root in roots)
        if status == "file failed to load":
            return failed(bag.failures[str(Path(fileloc).resolve())])
        if status == "file missing":
            return DagNotFoundError(dag_id, reason=f"its file {fileloc} is missing (the store remembers the DAG "
                                                   f"from when it loaded); put the file back in {where}")
        if status == "not in dags_folder":
            source = f"in {fileloc}" if fileloc else "in a notebook kernel or a script"
            hint = f"; move the file into {where}, or pass -f {fileloc}" if fileloc and Path(fileloc).is_file() else (
                f"; put it in a DAG file in {where}")
            return DagNotFoundError(dag_id, reason=f"it was defined {source}, outside {where}{hint}")
        return DagNotFoundError(dag_id, reason=f"{fileloc} no longer defines it (the store remembers it from an "
                                               "earlier load); `nbflow dags list` shows the DAGs there are")
    # A file that fails before it builds any DAG (a syntax error): the one that mentions the id.
    pattern = re.compile(rf"(?<![\w-]){re.escape(dag_id)}(?![\w-])")
    mentions = [f for f in bag.failures.values() if Path(f.fileloc).is_file() and pattern.search(
        Path(f.fileloc).read_text(encoding="utf-8", errors="replace"))]
    if len(mentions) == 1:
        return failed(mentions[0])
    return DagNotFoundError(dag_id, list(bag.dags), broken=len(bag.failures))


def _parse_conf(text: str | None, dag_id: str | None = None) -> dict[str, Any]:
    """``--conf`` as a run's conf, checked as every run's conf is (a JSON object, no NaN, within
    max_conf_bytes) before anything is stored."""
    from nbflow.dagrun import check_conf

    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"nbflow: --conf is not valid JSON ({exc.msg} at column {exc.colno}): {text}") from None
    return check_conf(value, dag_id, max_bytes=_settings().max_conf_bytes)


def _local(value: Any) -> str:
    if value is None:
        return "-"
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def _print_run_footer(run: Any) -> None:
    from nbflow.settings import get_settings
    from nbflow.store.engine import safe_url

    settings = get_settings()
    print()
    logs = {Path(p).parent.parent for p in run.log_paths.values()}
    if logs:
        print(f"logs:      {sorted(logs)[0]}")
    artifacts = Path(settings.artifacts_folder) / run.dag_id
    if artifacts.exists():
        print(f"artifacts: {artifacts}")
    print(f"store:     {safe_url(settings.database_url)}")


def _synced(args: argparse.Namespace, read: Any, *, summary: bool = False) -> tuple[Any, Any]:
    """Load the DAG files, record them (and their import errors) in the store, then ``read(store)``."""
    from nbflow.engine.sync import sync

    bag = _bag(args, summary=summary)
    store = _open_store()
    try:
        sync(bag, store)
        return bag, read(store)
    finally:
        store.close()


def _import_run_engine() -> None:
    """What running a DAG here needs, imported while its file loads in a child process: the engine,
    the store and SQLAlchemy's SQLite dialect take longer to import than a DAG file takes to load,
    and on a second core the two overlap (``benchmarks/run.py`` measures the cold start)."""
    # What is imported here lives as long as the command, and imports make no garbage worth a
    # collection: with the collector on, a cold `dags test` of 100 tasks spent about 15 ms
    # collecting during these imports and a full collection during the run walked what they had
    # made. Frozen, the imported objects are never walked again.
    collecting = gc.isenabled()
    gc.disable()
    try:
        import sqlalchemy.dialects.sqlite  # noqa: F401 (create_engine imports it otherwise)

        import nbflow.engine.runs  # noqa: F401
    finally:
        gc.freeze()
        if collecting:
            gc.enable()


def _run(args: argparse.Namespace, run_type: str, dag: Any = None) -> int:
    dag = dag or _find_dag(args, meanwhile=_import_run_engine)
    from nbflow.engine.runs import run_dag
    from nbflow.notebook.prestart import prestarted_kernels

    # the notebook tasks' kernels start now, while the run is written and planned
    with prestarted_kernels(dag, args.executor):
        run = run_dag(dag, logical_date=args.logical_date, conf=_parse_conf(args.conf, dag.dag_id), executor=args.executor,
                      run_type=run_type, progress=None)
    print(run.summary())
    _print_run_footer(run)
    return 0 if run.state == "success" else 1
