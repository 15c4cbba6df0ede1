"""What the command modules share: settings, the store, finding DAGs, printing times and runs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _settings() -> Any:
    from nbflow.settings import get_settings

    return get_settings()


def _open_store() -> Any:
    from nbflow.store import Store

    return Store.open(_settings())


def _bag(args: argparse.Namespace) -> Any:
    from nbflow.discovery import collect

    paths = list(getattr(args, "file", None) or [])
    if not paths:
        folder = Path(_settings().dags_folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder]
    return collect(paths)


def _find_dag(args: argparse.Namespace) -> Any:
    bag = _bag(args)
    if args.dag_id not in bag.dags:
        for failure in bag.failures.values():
            print(f"warning: {failure.fileloc}: {failure.summary}", file=sys.stderr)
    return bag.get(args.dag_id)


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

    settings = get_settings()
    from nbflow.store.engine import safe_url
    print()
    logs = {Path(p).parent.parent for p in run.log_paths.values()}
    if logs:
        print(f"logs:      {sorted(logs)[0]}")
    artifacts = Path(settings.artifacts_folder) / run.dag_id
    if artifacts.exists():
        print(f"artifacts: {artifacts}")
    print(f"store:     {safe_url(settings.database_url)}")


def _synced(args: argparse.Namespace, read: Any) -> tuple[Any, Any]:
    """Load the DAG files, record them (and their import errors) in the store, then ``read(store)``."""
    from nbflow.discovery import sync

    bag = _bag(args)
    store = _open_store()
    try:
        sync(bag, store)
        return bag, read(store)
    finally:
        store.close()


def _run(args: argparse.Namespace, run_type: str, dag: Any = None) -> int:
    from nbflow.runs import run_dag

    dag = dag or _find_dag(args)
    run = run_dag(dag, logical_date=args.logical_date, conf=_parse_conf(args.conf, dag.dag_id), executor=args.executor, run_type=run_type)
    print(run.summary())
    _print_run_footer(run)
    return 0 if run.state == "success" else 1
