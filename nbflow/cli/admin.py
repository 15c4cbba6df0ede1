"""``nbflow scheduler``, ``pools``, ``db``, ``config``, ``demo`` and ``version``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from nbflow.cli.common import (
    _settings,
    _open_store,
    _local,
    _describe_stalled,
    _plural,
    _print_run_footer,
    _stalled_schedulers,
)


# -- scheduler --------------------------------------------------------------------------------------


def cmd_scheduler(args: argparse.Namespace) -> int:
    if args.action == "status":
        return _scheduler_status()
    import signal
    import threading

    from nbflow.engine.scheduler import Scheduler
    from nbflow.store.engine import safe_url

    stop = threading.Event()
    scheduler = Scheduler(executor=args.executor, dag_paths=args.file)

    def graceful(signum: int, frame: Any) -> None:
        print(f"nbflow scheduler: got signal {signum}, finishing running tasks", file=sys.stderr)
        stop.set()
        scheduler.wake()

    signal.signal(signal.SIGTERM, graceful)
    signal.signal(signal.SIGINT, graceful)
    print(f"nbflow scheduler {scheduler.host_id} on {safe_url(_settings().database_url)}", file=sys.stderr, flush=True)
    scheduler.serve(stop, exit_when_idle=args.exit_when_idle, grace=args.grace)
    print(f"nbflow scheduler: stopped; finished {_plural(len(scheduler.finished_runs), 'run')}", file=sys.stderr)
    return 0


def _scheduler_status() -> int:
    from datetime import datetime, timezone

    settings = _settings()
    store = _open_store()
    try:
        hosts = store.list_hosts()
        stalled = _stalled_schedulers(store)
    finally:
        store.close()
    now = datetime.now(timezone.utc)
    alive = [h for h in hosts if h["state"] == "running" and h["heartbeat_at"] is not None
             and (now - h["heartbeat_at"]).total_seconds() < settings.host_stale_after]
    for host in stalled:
        print(_describe_stalled(host))
    if not alive and not stalled:
        print("no scheduler is running")
    for host in alive:
        detail = host.get("detail") or {}
        age = (now - host["heartbeat_at"]).total_seconds()
        print(f"{host['kind']:<8} {host['host_id']}  pid {host['pid']} on {host['hostname']}, up since "
              f"{_local(host['started_at'])}, heartbeat {age:.1f} s ago")
        print(f"         {_plural(detail.get('running_tasks', 0), 'task')} running in {_plural(len(detail.get('runs', [])), 'run')}"
              + (": " + ", ".join(detail.get("runs", [])[:5]) if detail.get("runs") else ""))
        if detail.get("held"):
            print(f"         {detail['held']}")
        if detail.get("cluster"):
            print(f"         tasks run on the Dask cluster {detail['cluster']}"
                  + (f", dashboard {detail['dashboard']}" if detail.get("dashboard") else ""))
        if detail.get("cluster_down"):
            print(f"         {detail['cluster_down']}; no task starts until it answers")
    return 0 if alive else 3


# -- pools ------------------------------------------------------------------------------------------


def cmd_pools_list(args: argparse.Namespace) -> int:
    from nbflow.engine import controls

    store = _open_store()
    try:
        rows = controls.list_pools(store)
    finally:
        store.close()
    if not rows:
        print("no pools: tasks run without pool limits; define one with `nbflow pools set NAME SLOTS`")
        return 0
    print(f"{'pool':<24} {'slots':>5} {'occupied':>8}  description")
    for row in rows:
        print(f"{row['name']:<24} {row['slots']:>5} {row['occupied']:>8}  {row.get('description') or ''}".rstrip())
    return 0


def cmd_pools_set(args: argparse.Namespace) -> int:
    from nbflow.engine import controls

    store = _open_store()
    try:
        controls.set_pool(args.name, args.slots, description=args.description, store=store)
    finally:
        store.close()
    print(f"pool {args.name}: {_plural(args.slots, 'slot')}")
    return 0


def cmd_pools_delete(args: argparse.Namespace) -> int:
    from nbflow.engine import controls

    store = _open_store()
    try:
        controls.delete_pool(args.name, store=store)
    finally:
        store.close()
    print(f"deleted pool {args.name}")
    return 0


# -- db, config, demo -------------------------------------------------------------------------------


def cmd_db(args: argparse.Namespace) -> int:
    from nbflow.store import migrate
    from nbflow.store.engine import safe_url, url_source

    settings = _settings()
    url = settings.database_url
    with url_source(settings.source_of("database_url")):
        shown = safe_url(url)
        if args.db_command == "init":
            migrate.init_db(url, busy_timeout=settings.db_busy_timeout)
            print(f"initialised {shown}")
        elif args.db_command == "upgrade":
            migrate.upgrade_db(url, busy_timeout=settings.db_busy_timeout)
            print(f"upgraded {shown} to {migrate.HEAD_REVISION}")
        elif args.db_command == "check":
            migrate.check_db(url, busy_timeout=settings.db_busy_timeout)
            print(f"{shown}: schema is current ({migrate.HEAD_REVISION})")
        elif args.db_command == "reset":
            if not args.yes:
                print(f"this deletes every run, task instance and output in {shown}; add --yes to do it", file=sys.stderr)
                return 2
            migrate.reset_db(url, busy_timeout=settings.db_busy_timeout)
            print(f"reset {shown}")
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    """Every setting with the value in use and where it came from (default, nbflow.toml or an
    NBFLOW_* variable), and where nbflow.toml is looked for."""
    from nbflow.store.engine import safe_url
    from nbflow.timetables import local_timezone, timezone_name

    settings = _settings()
    exists = "exists" if settings.config_file.is_file() else "does not exist; every value is a default or an NBFLOW_* variable"
    print(f"# settings file: {settings.config_file} ({exists})")
    lines = []
    for key, value in settings.as_dict().items():
        source = settings.source_of(key)
        origin = "nbflow.toml" if source not in ("default",) and not source.startswith("NBFLOW_") else source
        if key == "database_url":
            value = safe_url(value)
        elif key == "default_timezone" and not value:
            value, origin = timezone_name(local_timezone()), f"{origin}: not set, so this machine's zone"
        elif key == "fernet_key":  # a secret: never printed
            value, origin = ("***", origin) if value else ("", f"{origin}: not set, so the key file {settings.home / 'fernet.key'}")
        elif key == "executor" and value in ("auto", ""):
            value, origin = "auto", f"{origin}: process in the daemon and the Jupyter server, thread elsewhere"
        lines.append((f"{key} = {value}", origin))
    width = max(len(text) for text, _ in lines)
    for text, origin in lines:
        print(f"{text:<{width}}  # {origin}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from nbflow.engine.discovery import load_file
    from nbflow.engine.runs import run_dag

    demo_file = Path(__file__).parent.parent / "examples" / "demo_pipeline.py"
    dags, failure = load_file(demo_file)
    if failure is not None:
        raise SystemExit(f"nbflow: the demo pipeline failed to load: {failure.summary}\n{failure.traceback}")
    code = 0
    for dag in dags:
        run = run_dag(dag, run_type="manual", executor=args.executor)
        print(run.summary())
        _print_run_footer(run)
        from nbflow.paths import task_folder

        folder = task_folder(_settings().artifacts_folder, dag.dag_id, run.run_id, "report")
        notebook, html = folder / "demo_report.ipynb", folder / "demo_report.html"
        if notebook.exists():
            print(f"notebook:  {notebook}")
        if html.exists():
            print(f"report:    {html}")
        code = code or (0 if run.state == "success" else 1)
    return code


def cmd_version(args: argparse.Namespace) -> int:
    from nbflow import __version__

    print(f"nbflow {__version__}")
    return 0
