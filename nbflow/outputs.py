"""How task outputs are kept: JSON when the value is plain data, pickle otherwise.

JSON is chosen only when it gives back exactly what was returned (lists, dicts with string keys,
strings, numbers, booleans, None), so a tuple or a datetime is never silently changed on its way
downstream.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from typing import Any

from nbflow.errors import OutputNotSerializableError, OutputTooLargeError


@dataclass(frozen=True)
class EncodedOutput:
    kind: str            #: "json" or "pickle"
    data: str | bytes
    size: int

    def decode(self) -> Any:
        return decode(self.kind, self.data)


def _plain(value: Any, depth: int = 0) -> bool:
    if value is None or isinstance(value, (bool, str)):
        return True
    if type(value) in (int, float):
        return value == value and value not in (float("inf"), float("-inf"))
    if depth > 50:
        return False
    if type(value) is list:
        return all(_plain(item, depth + 1) for item in value)
    if type(value) is dict:
        return all(type(k) is str and _plain(v, depth + 1) for k, v in value.items())
    return False


def encode(value: Any, dag_id: str, task_id: str, max_bytes: int) -> EncodedOutput:
    """Serialise a task's return value, or raise an error that names the task and the fix."""
    if _plain(value):
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        size = len(text.encode()) if len(text) * 4 > max_bytes else len(text)
        encoded = EncodedOutput("json", text, size)
    else:
        try:
            data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # pickle raises many kinds: TypeError, PicklingError, AttributeError
            raise OutputNotSerializableError(dag_id, task_id, type(value).__name__, f"{type(exc).__name__}: {exc}") from exc
        encoded = EncodedOutput("pickle", data, len(data))
    if encoded.size > max_bytes:
        raise OutputTooLargeError(dag_id, task_id, encoded.size, max_bytes)
    return encoded


def decode(kind: str, data: str | bytes) -> Any:
    if kind == "json":
        return json.loads(data)
    return pickle.loads(data if isinstance(data, bytes) else data.encode("latin-1"))
