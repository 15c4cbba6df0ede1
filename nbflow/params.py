"""``Param``: a DAG parameter with a type, a default and a description, checked when a run starts.

Airflow users declare what a run may be given (``params={"region": Param("eu", enum=["eu", "us"])}``)
so that a trigger with a wrong value is refused at once, naming the parameter, instead of failing in
the middle of the run. A run's ``params`` are the DAG's, each overridden by the run's ``conf`` value
of the same name (Airflow's default), and every :class:`Param` value is checked against its JSON
Schema with ``jsonschema`` when the run is created, before anything is stored.
"""

from __future__ import annotations

import math
from typing import Any

from nbflow.errors import InvalidConfError, InvalidOptionError

#: JSON Schema keywords a Param takes besides its default and description (the common ones; any
#: other keyword of the draft is refused by name rather than silently ignored)
SCHEMA_KEYWORDS = frozenset({
    "type", "enum", "const", "format", "title", "examples",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "minLength", "maxLength", "pattern",
    "items", "minItems", "maxItems", "uniqueItems", "contains",
    "properties", "required", "additionalProperties", "minProperties", "maxProperties",
    "anyOf", "oneOf", "allOf", "not",
})


class _NoDefault:
    def __repr__(self) -> str:
        return "NOTSET"


#: a Param without a default: the run must give its value in ``conf``
NOTSET: Any = _NoDefault()


class Param:
    """A parameter of a DAG: its default (if any), what it is for, and the JSON Schema its value obeys."""

    def __init__(self, default: Any = NOTSET, description: str | None = None, **schema: Any) -> None:
        unknown = sorted(set(schema) - SCHEMA_KEYWORDS)
        if unknown:
            raise InvalidOptionError(
                unknown[0], schema[unknown[0]],
                f"a JSON Schema keyword a Param understands ({', '.join(sorted(SCHEMA_KEYWORDS))})",
            )
        if description is not None and not isinstance(description, str):
            raise InvalidOptionError("description", description, "text")
        self.default = default
        self.description = description
        self.schema: dict[str, Any] = dict(schema)
        _checked_schema(self.schema)

    @property
    def has_default(self) -> bool:
        return self.default is not NOTSET

    def check(self, value: Any, name: str, dag_id: str | None = None) -> Any:
        """``value`` if it obeys the schema; else InvalidConfError naming the parameter and why."""
        import jsonschema

        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidConfError(f"gives param {name!r} the value {value!r}, which JSON cannot carry", dag_id)
        validator_class = jsonschema.validators.validator_for(self.schema)
        error = jsonschema.exceptions.best_match(validator_class(self.schema).iter_errors(value))
        if error is not None:
            raise InvalidConfError(
                f"gives param {name!r} the value {value!r}, which is not allowed: {error.message}", dag_id,
                fix=f"Give {name} a value matching {self.schema}" + (f" ({self.description})" if self.description else "")
                + ".",
            )
        return value

    def describe(self) -> dict[str, Any]:
        """What views show and the store keeps: plain JSON."""
        out: dict[str, Any] = {"schema": self.schema, "description": self.description}
        if self.has_default:
            out["default"] = self.default
        return out

    def __repr__(self) -> str:
        return f"Param({self.default!r}, description={self.description!r}, **{self.schema!r})"


def _checked_schema(schema: dict[str, Any]) -> None:
    import jsonschema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        raise InvalidOptionError("schema", schema, f"a valid JSON Schema ({exc.message})") from None


def check_dag_params(params: dict[str, Any], dag_id: str, scheduled: bool) -> None:
    """At definition: every default obeys its schema, and a DAG on a schedule has a default for each
    parameter (a scheduled run has no conf to give it, so it could never start)."""
    for name, value in params.items():
        if not isinstance(value, Param):
            continue
        if value.has_default:
            try:
                value.check(value.default, name, dag_id)
            except InvalidConfError as exc:
                raise InvalidOptionError(f"params[{name!r}]", value.default,
                                         f"a default that obeys its own schema ({exc.problem})", dag_id) from None
        elif scheduled:
            raise InvalidOptionError(
                f"params[{name!r}]", "no default",
                "a default: a DAG on a schedule starts runs without conf, so each Param needs one "
                "(or set schedule=None and give the value when triggering)", dag_id,
            )


def run_params(params: dict[str, Any], conf: dict[str, Any] | None, dag_id: str | None = None) -> dict[str, Any]:
    """The params a run of a DAG sees: each declared one, overridden by ``conf``'s value of that name,
    every Param checked; raises InvalidConfError (no run is made) naming the first bad one."""
    conf = conf or {}
    values: dict[str, Any] = {}
    for name, declared in params.items():
        if isinstance(declared, Param):
            if name in conf:
                values[name] = declared.check(conf[name], name, dag_id)
            elif declared.has_default:
                values[name] = declared.default
            else:
                raise InvalidConfError(
                    f"has no value for param {name!r}, which has no default", dag_id,
                    fix=f'Give it in conf, e.g. {{"{name}": ...}}'
                    + (f" ({declared.description})" if declared.description else "") + ".",
                )
        else:
            values[name] = conf.get(name, declared)
    return values


def param_values(params: dict[str, Any], conf: dict[str, Any] | None) -> dict[str, Any]:
    """The same values without checking (for a run created and checked already): what tasks see."""
    conf = conf or {}
    values = {}
    for name, declared in params.items():
        if name in conf:
            values[name] = conf[name]
        elif isinstance(declared, Param):
            values[name] = declared.default if declared.has_default else None
        else:
            values[name] = declared
    return values
