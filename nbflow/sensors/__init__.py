"""The sensors: tasks that wait until something is true (a file, a time, another DAG's task).

Imported lazily by attribute, so that ``from nbflow.sensors import FileSensor`` loads only what it
needs.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BaseSensor",
    "ExternalTaskSensor",
    "FileSensor",
    "PokeReturnValue",
    "PythonSensor",
    "TimeDeltaSensor",
    "TimeSensor",
]

_WHERE = {
    "BaseSensor": "nbflow.sensors.base",
    "ExternalTaskSensor": "nbflow.sensors.external",
    "FileSensor": "nbflow.sensors.filesystem",
    "PokeReturnValue": "nbflow.sensors.base",
    "PythonSensor": "nbflow.sensors.python",
    "TimeDeltaSensor": "nbflow.sensors.time_delta",
    "TimeSensor": "nbflow.sensors.time_delta",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'nbflow.sensors' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
