"""``Variable``: named values a DAG reads at run time instead of hard-coding them.

Airflow's calls: ``Variable.get(key, default_var=..., deserialize_json=...)`` and ``Variable.set``.
``NBFLOW_VAR_<KEY>`` in the environment defines one without the store and takes precedence; the
store keeps the others encrypted (``nbflow variables set``).
"""

from __future__ import annotations

import json
from typing import Any

from nbflow.credentials import check_variable_key, env_variable, var_env_name
from nbflow.errors import InvalidRequestError, VariableNotFoundError

_MISSING: Any = object()


class Variable:
    """Class-level calls only, as in Airflow: a variable is looked up each time, so a change made
    with ``nbflow variables set`` is seen by the next task without restarting anything."""

    @classmethod
    def get(cls, key: str, default_var: Any = _MISSING, deserialize_json: bool = False) -> Any:
        """The value of ``key`` (text, or the JSON it holds with ``deserialize_json``); ``default_var``
        when there is none, else :class:`VariableNotFoundError`."""
        text = env_variable(key)
        where = f"the environment variable {var_env_name(key)}"
        if text is None:
            check_variable_key(key)
            from nbflow.store import Store

            with Store.open() as store:
                text = store.get_variable(key)
            where = "the store"
        if text is None:
            if default_var is _MISSING:
                raise VariableNotFoundError(key)
            return default_var
        if not deserialize_json:
            return text
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidRequestError(
                f"variable '{key}' (from {where}) is not valid JSON ({exc}). Read it with "
                "deserialize_json=False, or set it to JSON text."
            ) from None

    @classmethod
    def set(cls, key: str, value: Any, description: str | None = None, serialize_json: bool = False) -> None:
        """Store ``value`` under ``key``, encrypted: text as it is, or any JSON value with
        ``serialize_json``. A variable set in the environment still wins when read."""
        if serialize_json:
            try:
                value = json.dumps(value, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise InvalidRequestError(f"variable '{key}': its value cannot be written as JSON ({exc}). "
                                          "Pass plain values: strings, finite numbers, booleans, None, lists and dicts.") from None
        check_variable_key(key)
        from nbflow.store import Store

        with Store.open() as store:
            store.set_variable(key, value, description)

    @classmethod
    def delete(cls, key: str) -> None:
        """Remove ``key`` from the store (:class:`VariableNotFoundError` when it has none)."""
        check_variable_key(key)
        from nbflow.store import Store

        with Store.open() as store:
            store.delete_variable(key)
