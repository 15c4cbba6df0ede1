"""The argument parser: every command, its options and the function that runs it.

Each top-level command is added by a function of its own, and :func:`build_parser` adds only the
one asked for when it is told which: building every command's parser took about 10 ms, a fortieth of
a small ``nbflow dags test``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from nbflow.cli import admin as admin_commands
from nbflow.cli import airflow_imports as airflow_commands
from nbflow.cli import assets as asset_commands
from nbflow.cli import connections as connection_commands
from nbflow.cli import dags as dag_commands
from nbflow.cli import doctor as doctor_commands
from nbflow.cli import reports as report_commands
from nbflow.cli import retention as retention_commands
from nbflow.cli import tasks as task_commands

EXECUTORS = ["inline", "thread", "process", "dask"]


def _with_files(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("-f", "--file", action="append", metavar="PATH",
                   help="a DAG file or folder to load instead of dags_folder (repeatable)")
    return p


def _with_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("--logical-date", "-d", help="the run's logical date (default: now)")
    p.add_argument("--conf", "-c", help="JSON object given to the run as conf")
    p.add_argument("--executor", "-e", choices=EXECUTORS, help="default: the executor setting")


def _dags(sub: Any) -> None:
    dags = sub.add_parser("dags", help="list, show, test, trigger, backfill and pause DAGs").add_subparsers(dest="dags_command", required=True, metavar="ACTION")
    p = _with_files(dags.add_parser("list", help="the DAGs of dags_folder"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=dag_commands.cmd_dags_list)
    _with_files(dags.add_parser("list-import-errors", help="DAG files that failed to load")).set_defaults(func=dag_commands.cmd_dags_import_errors)
    p = _with_files(dags.add_parser("show", help="a DAG's tasks and dependencies"))
    p.add_argument("dag_id")
    p.set_defaults(func=dag_commands.cmd_dags_show)
    p = _with_files(dags.add_parser("test", help="run a DAG once now, in this process"))
    p.add_argument("dag_id")
    p.add_argument("logical_date_arg", nargs="?", metavar="LOGICAL_DATE",
                   help="the run's logical date, as Airflow's `dags test DAG DATE` takes it (or -d; not both)")
    _with_run(p)
    p.set_defaults(func=dag_commands.cmd_dags_test)
    p = _with_files(dags.add_parser(
        "trigger", help="a manual run: queued for a running scheduler, or run now when none is running"))
    p.add_argument("dag_id")
    _with_run(p)
    how = p.add_mutually_exclusive_group()
    how.add_argument("--queue", action="store_true", help="only queue the run, for a scheduler to pick up")
    how.add_argument("--wait", action="store_true", help="run it now in this process and wait for it")
    p.set_defaults(func=dag_commands.cmd_dags_trigger)
    p = _with_files(dags.add_parser("next", help="the next scheduled times, in the DAG's zone, UTC and local time"))
    p.add_argument("dag_id")
    p.add_argument("-n", type=int, default=10, help="how many (default 10)")
    p.add_argument("--after", metavar="DATE", help="list the times after this date (default: now)")
    p.set_defaults(func=dag_commands.cmd_dags_next)
    p = _with_files(dags.add_parser("backfill", help="run every scheduled time from --start to --end"))
    p.add_argument("dag_id")
    p.add_argument("--start", required=True, metavar="DATE", help="first logical date (included)")
    p.add_argument("--end", required=True, metavar="DATE", help="last logical date (included; a date means the whole day)")
    p.add_argument("--reprocess", choices=["none", "failed", "all"], default="none",
                   help="runs that exist already: keep them (none, the default), rerun the failed ones, or rerun all")
    p.add_argument("--executor", "-e", choices=EXECUTORS, help="default: the executor setting")
    p.set_defaults(func=dag_commands.cmd_dags_backfill)
    for name, func, text in (("pause", dag_commands.cmd_dags_pause, "start no new runs of a DAG"),
                             ("unpause", dag_commands.cmd_dags_unpause, "let the scheduler run a DAG again")):
        p = _with_files(dags.add_parser(name, help=text))
        p.add_argument("dag_id")
        p.set_defaults(func=func)
    p = dags.add_parser("runs", help="a DAG's runs, newest first")
    p.add_argument("dag_id")
    p.add_argument("--limit", type=int, default=25)
    p.set_defaults(func=dag_commands.cmd_dags_runs)


def _tasks(sub: Any) -> None:
    tasks = sub.add_parser("tasks", help="list, test, clear and mark tasks, and read their logs").add_subparsers(dest="tasks_command", required=True, metavar="ACTION")
    p = _with_files(tasks.add_parser("list", help="a DAG's task ids in dependency order"))
    p.add_argument("dag_id")
    p.set_defaults(func=task_commands.cmd_tasks_list)
    p = _with_files(tasks.add_parser("test", help="run one task alone, recording nothing"))
    p.add_argument("dag_id")
    p.add_argument("task_id")
    p.add_argument("logical_date_arg", nargs="?", metavar="LOGICAL_DATE",
                   help="the logical date, as Airflow's `tasks test DAG TASK DATE` takes it (or -d; not both)")
    p.add_argument("--logical-date", "-d", help="the logical date (default: now)")
    p.add_argument("--conf", "-c")
    p.set_defaults(func=task_commands.cmd_tasks_test)
    p = _with_files(tasks.add_parser("clear", help="make task instances run again (lists them; --yes clears)"))
    p.add_argument("dag_id")
    p.add_argument("-t", "--task", dest="task_ids", action="extend", nargs="+", metavar="TASK",
                   help="the tasks to clear (default: all); one instance of a mapped task as TASK[MAP_INDEX]")
    p.add_argument("--start", metavar="DATE", help="runs with a logical date from this date")
    p.add_argument("--end", metavar="DATE", help="runs with a logical date up to this date (a date means the whole day)")
    p.add_argument("--run-id", "-r", help="only this run (instead of --start/--end)")
    p.add_argument("--downstream", action="store_true", help="their downstream tasks too")
    p.add_argument("--only-failed", action="store_true", help="only failed and upstream-failed task instances")
    p.add_argument("--yes", action="store_true", help="clear them (without it, only list them)")
    p.set_defaults(func=task_commands.cmd_tasks_clear)
    p = _with_files(tasks.add_parser("mark", help="set task instances of a run to success or failed"))
    p.add_argument("dag_id")
    p.add_argument("task_ids", nargs="+", metavar="TASK")
    p.add_argument("--run-id", "-r", required=True)
    p.add_argument("--state", required=True, choices=["success", "failed"])
    p.add_argument("--downstream", action="store_true", help="their downstream tasks too")
    p.set_defaults(func=task_commands.cmd_tasks_mark)
    p = tasks.add_parser("logs", help="print a task's log files (every try)")
    p.add_argument("dag_id")
    p.add_argument("task_id")
    p.add_argument("--run-id", "-r", help="default: the latest run")
    p.add_argument("--try", dest="try_number", type=int, help="only this try")
    p.add_argument("--map-index", type=int, help="a mapped task's instance (default: every instance)")
    p.set_defaults(func=task_commands.cmd_tasks_logs)
    p = tasks.add_parser("states", help="each task instance of a run, mapped instances included")
    p.add_argument("dag_id")
    p.add_argument("--run-id", "-r", help="default: the latest run")
    p.set_defaults(func=task_commands.cmd_tasks_states)


def _reports(sub: Any) -> None:
    p = sub.add_parser("schedule", help="run a notebook on a cron schedule: writes a one-task DAG file into dags_folder")
    p.add_argument("notebook", metavar="NOTEBOOK", help="the .ipynb file to run")
    p.add_argument("--cron", required=True, help='when, in the time zone, e.g. "0 7 * * *" or @daily')
    p.add_argument("--timezone", "--tz", metavar="TZ", help="IANA zone (default: default_timezone, else this machine's)")
    p.add_argument("-p", "--param", action="append", metavar="KEY=VALUE",
                   help="a notebook parameter (repeatable); the value is parsed as JSON when it can be, else kept as text")
    p.add_argument("--report", choices=["html", "none"], default="html",
                   help="write an HTML report next to the output notebook (default: html)")
    p.add_argument("--dag-id", help="default: report_<notebook name>")
    p.set_defaults(func=report_commands.cmd_schedule)
    p = sub.add_parser("reports", help="a DAG's runs with their output notebooks and HTML reports")
    p.add_argument("dag_id")
    p.add_argument("--limit", type=int, default=25)
    p.set_defaults(func=report_commands.cmd_reports)


def _scheduler(sub: Any) -> None:
    p = sub.add_parser("scheduler", help="run the scheduler daemon, or show which schedulers run")
    p.add_argument("action", nargs="?", choices=["run", "status"], default="run")
    p.add_argument("--exit-when-idle", action="store_true", help="return once no run is active and none is due")
    p.add_argument("--executor", "-e", choices=EXECUTORS)
    p.add_argument("--grace", type=float, default=60.0, help="seconds to let running tasks finish on SIGTERM")
    p.add_argument("-f", "--file", action="append", metavar="PATH", help="DAG files or folders (default: dags_folder)")
    p.set_defaults(func=admin_commands.cmd_scheduler)


def _pools(sub: Any) -> None:
    pools = sub.add_parser("pools", help="named limits on task slots running at once").add_subparsers(
        dest="pools_command", required=True, metavar="ACTION")
    pools.add_parser("list", help="pools with their slots and how many are occupied").set_defaults(func=admin_commands.cmd_pools_list)
    p = pools.add_parser("set", help="create or resize a pool")
    p.add_argument("name")
    p.add_argument("slots", type=int)
    p.add_argument("--description")
    p.set_defaults(func=admin_commands.cmd_pools_set)
    p = pools.add_parser("delete", help="remove a pool")
    p.add_argument("name")
    p.set_defaults(func=admin_commands.cmd_pools_delete)


def _db(sub: Any) -> None:
    db = sub.add_parser("db", help="the metadata database").add_subparsers(dest="db_command", required=True, metavar="ACTION")
    for name, text in (("init", "create the tables"), ("upgrade", "migrate to this version's schema"),
                       ("check", "say whether the schema is current"), ("reset", "delete everything (--yes)")):
        p = db.add_parser(name, help=text)
        if name == "reset":
            p.add_argument("--yes", action="store_true", help="confirm reset")
        p.set_defaults(func=admin_commands.cmd_db)
    retention_commands.add_parsers(sub, db)


def _config(sub: Any) -> None:
    config = sub.add_parser("config", help="settings").add_subparsers(dest="config_command", required=True, metavar="ACTION")
    config.add_parser("show", help="every setting and its value").set_defaults(func=admin_commands.cmd_config_show)


def _demo(sub: Any) -> None:
    p = sub.add_parser("demo", help="run the demo pipeline and print where its outputs are")
    p.add_argument("--executor", "-e", choices=EXECUTORS)
    p.set_defaults(func=admin_commands.cmd_demo)


def _version(sub: Any) -> None:
    sub.add_parser("version", help="print the version").set_defaults(func=admin_commands.cmd_version)


def _doctor(sub: Any) -> None:
    p = sub.add_parser("doctor", help="check the setup: store, DAG files, scheduler, Jupyter extensions, kernels, "
                                      "disk, notifications; each line ok or what to do")
    p.add_argument("--send-test", action="store_true",
                   help="also send a test message to each notification target and, with SMTP settings, an email "
                        "to smtp_mail_from")
    p.set_defaults(func=doctor_commands.cmd_doctor)


def _import_airflow(sub: Any) -> None:
    p = sub.add_parser("import-airflow", help="point an Airflow DAG file's imports at nbflow (shows a diff; "
                                              "--write writes it) and list what nbflow lacks")
    p.add_argument("paths", nargs="+", metavar="PATH", help="a .py file or a folder of them")
    p.add_argument("--write", action="store_true", help="write the rewritten files (default: only show the diff)")
    p.set_defaults(func=airflow_commands.cmd_import_airflow)


#: each top-level command and the function that adds it (one function may add two commands)
COMMANDS: dict[str, Callable[[Any], None]] = {
    "dags": _dags, "tasks": _tasks, "schedule": _reports, "reports": _reports, "scheduler": _scheduler,
    "pools": _pools, "db": _db, "storage": _db, "config": _config, "demo": _demo, "version": _version,
    "doctor": _doctor, "import-airflow": _import_airflow,
    "connections": connection_commands.add_parsers, "variables": connection_commands.add_parsers,
    "assets": asset_commands.add_parsers,
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or, given the first word of a command line that names one, of
    that command alone (any other first word gets them all, for its help or its error)."""
    parser = argparse.ArgumentParser(prog="nbflow", description="Workflows that live inside Jupyter.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    builders = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for add in builders:
        add(sub)
    return parser
