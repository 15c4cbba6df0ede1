"""The sensors: tasks that wait until something is true (a file, a time, another DAG's task).

Imported lazily by attribute, so that ``from nbflow.sensors import FileSensor`` loads only what it
needs.
"""

from __future__ import annotations

from nbflow.lazy import exports

__all__ = [
    "BaseSensor",
    "BashSensor",
    "DateTimeSensor",
    "ExternalTaskMarker",
    "ExternalTaskSensor",
    "FileSensor",
    "HttpSensor",
    "PokeReturnValue",
    "PythonSensor",
    "TimeDeltaSensor",
    "TimeSensor",
]

_WHERE = {
    "BaseSensor": "nbflow.sensors.base",
    "BashSensor": "nbflow.sensors.bash",
    "DateTimeSensor": "nbflow.sensors.date_time",
    "ExternalTaskMarker": "nbflow.sensors.external",
    "ExternalTaskSensor": "nbflow.sensors.external",
    "FileSensor": "nbflow.sensors.filesystem",
    "HttpSensor": "nbflow.sensors.http",
    "PokeReturnValue": "nbflow.sensors.base",
    "PythonSensor": "nbflow.sensors.python",
    "TimeDeltaSensor": "nbflow.sensors.time_delta",
    "TimeSensor": "nbflow.sensors.time_delta",
}


__getattr__, __dir__ = exports("nbflow.sensors", _WHERE, __all__)
