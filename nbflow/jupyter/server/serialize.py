"""Store rows and DAGs as the JSON of the REST API (the field lists are in the API's contract).

Times go out as ISO 8601 in UTC (``+00:00``); fields named ``*_local`` carry the DAG zone's offset
instead. Nothing here reads the store or a file: callers pass what they read, so every shape can be
checked without a server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbflow.dag import DAG

RECENT_RUNS = 10


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def local_iso(value: datetime | None, zone: tzinfo) -> str | None:
    return None if value is None else value.astimezone(zone).isoformat()


# -- schedules ----------------------------------------------------------------------------------------


def raw_schedule(dag: DAG | None, row: Mapping[str, Any]) -> str | None:
    """The schedule as written (``0 6 * * *``, ``@daily``, ``@once``), ``None`` for manual only.

    Without the DAG object the stored description is all there is: ``0 6 * * * (Asia/Seoul)``.
    """
    if dag is not None:
        expression = getattr(dag.timetable, "expression", None)
        if expression:
            return str(expression)
        schedule = dag.schedule
        if schedule is None or (isinstance(schedule, str) and schedule.strip() in ("", "None")):
            return None
        if not isinstance(schedule, str):  # a timedelta, assets, a timetable: the words nbflow gives it
            return str(dag.timetable.description)
        return str(schedule)
    text = row.get("schedule")
    if not text or text == "manual":
        return None
    zone = row.get("timezone")
    suffix = f" ({zone})"
    return text[: -len(suffix)] if zone and text.endswith(suffix) else text


#: the language the reader's browser asks for (its Accept-Language, set per request by the
#: handlers), for schedules in words; None: the server's locale decides
READER_LANGUAGE: ContextVar[str | None] = ContextVar("nbflow_reader_language", default=None)


def schedule_words(schedule: Any, fallback: str | None) -> str | None:
    """The schedule in words (nbflow.cronwords), in the reader's language, or ``fallback`` (the
    timetable's description) when that is not available or cannot phrase it."""
    try:
        from nbflow.cronwords import describe_schedule
    except ImportError:
        return fallback
    try:
        return describe_schedule(schedule, READER_LANGUAGE.get())
    except Exception:  # words are a nicety: a value they cannot phrase still has its description
        return fallback


def cron_words(expression: str, fallback: str) -> str:
    try:
        from nbflow.cronwords import describe_cron
    except ImportError:
        return fallback
    try:
        return describe_cron(expression, READER_LANGUAGE.get())
    except Exception:  # as above
        return fallback


# -- rows ---------------------------------------------------------------------------------------------


def run_summary(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "run_id": row["run_id"], "state": row["state"], "run_type": row["run_type"],
        "logical_date": iso(row.get("logical_date")), "start_date": iso(row.get("start_date")),
        "end_date": iso(row.get("end_date")), "conf": row.get("conf") or {},
    }


def task_instance(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "task_id": row["task_id"], "state": row["state"], "try_number": row.get("try_number") or 0,
        "max_tries": row.get("max_tries") or 0, "start_date": iso(row.get("start_date")),
        "end_date": iso(row.get("end_date")), "duration": row.get("duration"), "hostname": row.get("hostname"),
        "error": row.get("error"), "map_index": row.get("map_index", -1),
        **({"map_counts": dict(row["map_counts"])} if row.get("map_counts") else {}),
    }


def try_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "try_number": row["try_number"], "state": row["state"], "start_date": iso(row.get("start_date")),
        "end_date": iso(row.get("end_date")), "duration": row.get("duration"), "hostname": row.get("hostname"),
        "error": row.get("error"), "has_log": bool(row.get("log_path")), "peak_rss": row.get("peak_rss"),
        # the address of the cluster worker (Dask) that ran it, or None
        "worker": row.get("worker"),
    }


#: JSON Schema type -> the field a trigger form shows for it
_FIELD_OF_SCHEMA = {"integer": "int", "number": "float", "string": "str", "boolean": "bool", "array": "list",
                    "object": "dict", "null": "None"}
_FIELD_OF_VALUE = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict", type(None): "None"}


def params_of(definition: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A DAG's params as a trigger form's fields: name, field type (from a Param's JSON Schema
    ``type``, else from the default), default, the default as JSON, and the Param's description
    with its other rules (enum, bounds) as help."""
    import json

    fields = []
    for name, declared in (definition.get("params") or {}).items():
        is_param = isinstance(declared, Mapping) and "schema" in declared
        schema = dict(declared.get("schema") or {}) if is_param else {}
        default = declared.get("default") if is_param else declared
        kind = schema.get("type")
        field = _FIELD_OF_SCHEMA.get(kind) if isinstance(kind, str) else None
        field = field or _FIELD_OF_VALUE.get(type(default), "other")
        rules = ", ".join(f"{key} {json.dumps(value)}" for key, value in schema.items() if key != "type")
        help_text = "; ".join(part for part in ((declared.get("description") if is_param else None), rules) if part)
        fields.append({"name": name, "type": field, "default": default, "source": json.dumps(default),
                       "help": help_text or None, "required": is_param and "default" not in declared})
    return fields


def tasks_of(definition: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The tasks of a stored (or fresh) ``DAG.describe()``, in DAG order."""
    return [
        {"task_id": t["task_id"], "display_name": t.get("display_name") or t["task_id"],
         "kind": t.get("kind") or "custom", "upstream": list(t.get("upstream") or []),
         "group": t.get("group"), "trigger_rule": t.get("trigger_rule") or "all_success"}
        for t in definition.get("tasks") or []
    ]


def dag_summary(row: Mapping[str, Any], dag: DAG | None, runs: list[Mapping[str, Any]],
                counts: Mapping[str, int], next_run: datetime | None) -> dict[str, Any]:
    """A DAG as the list shows it. ``runs`` are its newest runs (newest first), ``counts`` its runs
    per state; ``dag`` the DAG object when its file could be loaded (for the schedule as written)."""
    summaries = [run_summary(r) for r in runs[:RECENT_RUNS]]
    schedule = raw_schedule(dag, row)
    definition = row.get("definition") or {}
    display = dag.dag_display_name if dag is not None else definition.get("dag_display_name")
    return {
        "dag_id": row["dag_id"], "dag_display_name": display or row["dag_id"],
        "is_paused": bool(row.get("is_paused")), "schedule": schedule,
        "schedule_text": schedule_words(dag.schedule if dag is not None else schedule, row.get("schedule")),
        "timezone": row.get("timezone"), "next_run": iso(next_run),
        "owner": row.get("owner"), "tags": list(row.get("tags") or []), "description": row.get("description"),
        "fileloc": row.get("fileloc"), "last_run": summaries[0] if summaries else None, "recent_runs": summaries,
        "active_runs": int(counts.get("queued", 0)) + int(counts.get("running", 0)),
        "failed_runs": int(counts.get("failed", 0)),
    }


def times(values: Iterable[datetime], zone: tzinfo) -> tuple[list[str | None], list[str | None]]:
    """The same instants in UTC and in ``zone``."""
    listed = list(values)
    return [iso(v) for v in listed], [local_iso(v, zone) for v in listed]


def import_error(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"fileloc": row["fileloc"], "summary": row.get("summary"), "traceback": row.get("traceback"),
            "timestamp": iso(row.get("created_at"))}


def event(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "at": iso(row.get("at")), "kind": row["kind"], "dag_id": row.get("dag_id"),
            "run_id": row.get("run_id"), "task_id": row.get("task_id"), "detail": row.get("detail")}


def host(row: Mapping[str, Any], live: set[str]) -> dict[str, Any]:
    """A scheduler host; one the store says is running but that has gone silent is "unresponsive"; ``held``
    says why a host starts no task now (free memory under ``min_free_memory``), None when it does."""
    state = row.get("state")
    if state == "running" and row["host_id"] not in live:
        state = "unresponsive"
    return {"host_id": row["host_id"], "hostname": row.get("hostname"), "pid": row.get("pid"),
            "kind": row.get("kind"), "state": state, "last_heartbeat": iso(row.get("heartbeat_at")),
            # why it starts no task now (free memory under min_free_memory), or None
            "held": (row.get("detail") or {}).get("held"),
            # its executor, and for a Dask cluster its scheduler's address and dashboard link (or None)
            "executor": (row.get("detail") or {}).get("executor"),
            "cluster": (row.get("detail") or {}).get("cluster"),
            "dashboard": (row.get("detail") or {}).get("dashboard")}
