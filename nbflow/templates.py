"""The template context of a task instance, and Jinja rendering of templated fields.

The context holds times both in the DAG's zone (``logical_date``, ``ds``, ...) and in UTC
(``logical_date_utc``, ``ds_utc``, ...), so a template never has to guess which one it got.
Undefined variables are errors that name the variable; they never render as empty strings.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from nbflow.errors import DagDefinitionError, TemplateError
from nbflow.params import param_values

if TYPE_CHECKING:
    from nbflow.operators.base import BaseOperator



class Literal(str):
    """A string that templated fields keep as it is: ``{{`` in it is text, not a template.

    For values that come from outside the DAG's author, such as a file name, which must never be
    evaluated by Jinja. A ``str`` subclass, so that every operator treats it as the text it is.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"literal({str.__repr__(self)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Literal, (str(self),))


def literal(value: str) -> Literal:
    """Mark ``value`` as plain text in a templated field (Airflow's ``literal``): it is not rendered."""
    if not isinstance(value, str):
        raise DagDefinitionError(f"literal() takes a string, not {type(value).__name__}; pass the text to keep as it is")
    return Literal(value)


def build_context(
    *,
    dag: Any,
    task: BaseOperator,
    run_id: str,
    logical_date: datetime,
    data_interval_start: datetime,
    data_interval_end: datetime,
    conf: dict[str, Any] | None,
    ti: Any,
    dag_run: Any = None,
) -> dict[str, Any]:
    """Everything a task or template can ask for, by name."""
    utc = timezone.utc
    ld_utc = logical_date.astimezone(utc)
    # the DAG's and the task's params, each overridden by the run's conf value of its name (Airflow's default)
    params = param_values({**(getattr(dag, "params", None) or {}), **(task.params or {})}, conf)
    return {
        "dag": dag,
        "task": task,
        "ti": ti,
        "task_instance": ti,
        "dag_run": dag_run,
        "run_id": run_id,
        "params": params,
        "conf": dict(conf or {}),
        "logical_date": logical_date,
        "logical_date_utc": ld_utc,
        "ds": logical_date.strftime("%Y-%m-%d"),
        "ds_nodash": logical_date.strftime("%Y%m%d"),
        "ds_utc": ld_utc.strftime("%Y-%m-%d"),
        "ts": logical_date.isoformat(),
        "ts_nodash": logical_date.strftime("%Y%m%dT%H%M%S"),
        "ts_utc": ld_utc.isoformat(),
        "data_interval_start": data_interval_start,
        "data_interval_end": data_interval_end,
        "data_interval_start_utc": data_interval_start.astimezone(utc),
        "data_interval_end_utc": data_interval_end.astimezone(utc),
        "macros": _Macros(),
        "conn": _Connections(),
        "var": _Variables(),
    }


class _Connections:
    """``{{ conn.my_db.host }}``: a connection is looked up when a template names it, not before, so
    templates that name none cost nothing; each is looked up once per task instance."""

    def __init__(self) -> None:
        self._found: dict[str, Any] = {}

    def get(self, conn_id: str) -> Any:
        if conn_id not in self._found:
            from nbflow.connection import Connection

            self._found[conn_id] = Connection.get(conn_id)
        return self._found[conn_id]

    def __getattr__(self, conn_id: str) -> Any:
        if conn_id.startswith("__"):
            raise AttributeError(conn_id)
        return self.get(conn_id)


class _VariableValues:
    def __init__(self, deserialize_json: bool) -> None:
        self._json = deserialize_json

    def get(self, key: str, default_var: Any = None) -> Any:
        """``{{ var.value.get('key', 'fallback') }}``, as in Airflow."""
        from nbflow.variable import Variable

        return Variable.get(key, default_var=default_var, deserialize_json=self._json)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        from nbflow.variable import Variable

        return Variable.get(key, deserialize_json=self._json)


class _Variables:
    """``{{ var.value.key }}`` (text) and ``{{ var.json.key.field }}`` (JSON), read when named."""

    def __init__(self) -> None:
        self.value = _VariableValues(False)
        self.json = _VariableValues(True)


class _Macros:
    """``{{ macros.ds_add(ds, 7) }}`` and the modules templates commonly need."""

    datetime = datetime
    timedelta = timedelta

    @staticmethod
    def ds_add(ds: str, days: int) -> str:
        return (datetime.strptime(ds, "%Y-%m-%d") + timedelta(days=days)).strftime("%Y-%m-%d")

    @staticmethod
    def ds_format(ds: str, input_format: str, output_format: str) -> str:
        return datetime.strptime(ds, input_format).strftime(output_format)


def _env(searchpath: tuple[str, ...] = ()) -> Any:
    """The Jinja environment for templates whose files (``{% include %}``, a field naming a ``.sql``
    file) are found in ``searchpath``; one per search path, kept, so compiled templates are reused."""
    environment = _environments.get(searchpath)
    if environment is None:
        import jinja2

        environment = _environments[searchpath] = jinja2.Environment(
            loader=jinja2.FileSystemLoader(list(searchpath)) if searchpath else None,
            undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False, cache_size=400,
        )
    return environment


_environments: dict[tuple[str, ...], Any] = {}


def searchpath_of(dag: Any) -> tuple[str, ...]:
    """Where a DAG's template files are looked for: its file's folder, then ``template_searchpath``."""
    import os

    folders: list[str] = []
    fileloc = getattr(dag, "fileloc", None)
    if fileloc:
        folders.append(os.path.dirname(os.path.abspath(fileloc)))
    folders += [str(folder) for folder in getattr(dag, "template_searchpath", None) or ()]
    return tuple(dict.fromkeys(folders))


def _template_file(value: str, task: BaseOperator | None) -> bool:
    """Whether a templated field's text names a template file (``query.sql`` for a ``.sql`` field)."""
    extensions = getattr(task, "template_ext", ()) if task is not None else ()
    return bool(extensions) and value.endswith(tuple(extensions))


def _has_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


def render_value(value: Any, context: dict[str, Any], task: BaseOperator | None = None, field: str | None = None) -> Any:
    """``value`` with every string in it rendered; containers are copied, other values kept."""
    if isinstance(value, str):
        if isinstance(value, Literal):
            return value
        is_file = _template_file(value, task)
        if not is_file and not _has_template(value):
            return value
        import jinja2

        searchpath = searchpath_of(context.get("dag"))
        try:
            environment = _env(searchpath)
            if is_file:
                return environment.get_template(value).render(context)
            return environment.from_string(value).render(context)
        except jinja2.TemplateNotFound as exc:
            where = ", ".join(searchpath) or "nowhere (the DAG has no file and no template_searchpath)"
            raise TemplateError(
                f"the template file {exc.name!r} is not in {where}; put it beside the DAG file or add its "
                "folder to the DAG's template_searchpath",
                getattr(task, "dag_id", None), getattr(task, "task_id", None), field,
            ) from None
        except jinja2.UndefinedError as exc:
            variable = _undefined_name(str(exc))
            raise TemplateError(
                f"{exc}. Known variables: {', '.join(sorted(context))}; pass your own values with "
                "params={...} or conf",
                getattr(task, "dag_id", None), getattr(task, "task_id", None), field, variable,
            ) from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"template syntax error on line {exc.lineno}: {exc.message}",
                getattr(task, "dag_id", None), getattr(task, "task_id", None), field,
            ) from None
    if isinstance(value, list):
        return [render_value(v, context, task, field) for v in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(render_value(v, context, task, field) for v in value)
    if isinstance(value, dict):
        return {k: render_value(v, context, task, field) for k, v in value.items()}
    return value


def _undefined_name(message: str) -> str | None:
    # jinja2 says "'name' is undefined" or "'dict object' has no attribute 'name'"
    import re

    match = re.search(r"'([^']+)' is undefined", message) or re.search(r"has no attribute '([^']+)'", message)
    return match.group(1) if match else None


def render_fields(task: BaseOperator, context: dict[str, Any]) -> None:
    """Render every templated field of ``task`` in place (call it on a copy of the task)."""
    for field in type(task).template_fields:
        value = task.__dict__.get(field)
        if value is not None:
            object.__setattr__(task, field, render_value(value, context, task, field))
