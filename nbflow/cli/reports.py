"""``nbflow schedule`` and ``nbflow reports``: notebooks as scheduled reports."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from nbflow.cli.common import (
    _settings,
    _open_store,
    _local,
    _positive,
    _require_dag,
)


# -- scheduled notebook reports ---------------------------------------------------------------------


def parse_param(text: str) -> tuple[str, Any]:
    """``key=value``: the value as JSON when it parses (ints, floats, true/false, lists, objects),
    ``True``/``False``/``None`` as Python spells them, else the text itself."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise SystemExit(f"nbflow: -p takes key=value with a Python name as key, not {text!r}")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        pass
    return key, {"True": True, "False": False, "None": None}.get(raw, raw)


def cmd_schedule(args: argparse.Namespace) -> int:
    """Write a one-task DAG file that runs a notebook on a cron schedule, into dags_folder."""
    from nbflow.errors import DagFileConflictError, DagImportError
    from nbflow.notebook.schedule import check_notebook_path, schedule_notebook

    notebook = Path(args.notebook).expanduser().resolve()
    check_notebook_path(notebook, args.notebook)
    parameters = dict(parse_param(p) for p in args.param or [])
    try:
        scheduled = schedule_notebook(notebook, args.cron, timezone=args.timezone, parameters=parameters,
                                      report=args.report, dag_id=args.dag_id, settings=_settings())
    except DagFileConflictError as exc:
        if exc.other is None:
            raise SystemExit(f"nbflow: {exc.path} exists and was not written by `nbflow schedule`; "
                             "pick another --dag-id or move that file") from None
        raise SystemExit(f"nbflow: DAG id {exc.dag_id!r} is already defined in {exc.other}; pick another --dag-id") from None
    except DagImportError as exc:
        print(f"nbflow: the DAG file for {exc.fileloc} would not load, so it was not written: {exc.summary}",
              file=sys.stderr)
        return 1
    dag, dag_id = scheduled.dag, scheduled.dag_id
    print(f"scheduled {dag_id}: {notebook}")
    print(f"  DAG file:   {scheduled.fileloc}")
    print(f"  schedule:   {dag.timetable.description}")
    if parameters:
        print(f"  parameters: {json.dumps(parameters, default=str)}")
    print("  next runs:")
    for when in dag.next_runs(3):
        print(f"    {when.strftime('%Y-%m-%d %H:%M %Z')}   ({_local(when)} local)")
    print(f"run it now:          nbflow dags trigger {dag_id} --wait")
    print("run it on schedule:  keep a scheduler running (`nbflow scheduler`, or `%nbflow scheduler start` in a notebook)")
    print(f"see its reports:     nbflow reports {dag_id}")
    return 0


def cmd_reports(args: argparse.Namespace) -> int:
    """Each run of a DAG with the output notebooks and HTML reports of its notebook tasks."""
    from nbflow.store import queries

    _positive(args.limit, "--limit", "a number of runs", args.dag_id)
    settings = _settings()
    store = _open_store()
    try:
        _require_dag(args, store)  # an unknown DAG, or one whose file failed, is an error saying so
        runs = queries.runs_with_task_instances(store, args.dag_id, args.limit)
    finally:
        store.close()
    if not runs:
        print(f"{args.dag_id} has no runs yet: run it now with `nbflow dags trigger {args.dag_id} --wait`")
        return 0
    print(f"{'run_id':<46} {'state':<8} logical date (local)")
    for found in runs:
        run, instances = found.run, found.task_instances
        print(f"{run['run_id']:<46} {run['state']:<8} {_local(run['logical_date'])}")
        notebook_tasks = [ti for ti in instances if ti.get("operator") == "NotebookOperator"] or instances
        for ti in sorted(notebook_tasks, key=lambda t: t["task_id"]):
            # from the artifacts folder only: the report a run left where `nbflow reports` looks
            output, html = queries.notebook_files(settings.artifacts_folder, args.dag_id, run["run_id"], ti["task_id"])
            if output is None and ti.get("operator") != "NotebookOperator":
                continue
            print(f"    {ti['task_id']} ({ti['state']})")
            print(f"      notebook: {output or '-'}")
            print(f"      report:   {html or '-'}")
    return 0
