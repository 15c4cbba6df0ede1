"""What the model finds at run time through entry points, without importing the layers below it.

Two things a model object needs that live in lower layers: a ``DAG`` displayed as the last
expression of a cell shows as its live graph (a view), and ``dag.test()`` / ``dag.backfill()`` run
it (the engine). The model imports neither: the views declare what they draw in the entry point
group ``nbflow.display`` (``dag = "nbflow.jupyter.display:dag_bundle"``) and the engine what runs a
DAG in ``nbflow.engine`` (``run``, ``backfill``), and this module looks them up by name. So the
import graph has no cycle through the model, and another view or engine can be installed instead.

Displaying never raises: with no renderer, or one that fails, the object shows its plain picture.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from nbflow.errors import NotInstalledError

log = logging.getLogger(__name__)

GROUP = "nbflow.display"
ENGINE_GROUP = "nbflow.engine"


@functools.cache
def _points(group: str) -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {point.name: point for point in entry_points(group=group)}


def _renderers() -> dict[str, Any]:
    return _points(GROUP)


def render(kind: str, obj: Any, **options: Any) -> dict[str, Any] | None:
    """The MIME bundle the installed renderer of ``kind`` makes of ``obj``, or None without one."""
    point = _renderers().get(kind)
    if point is None:
        return None
    try:
        return point.load()(obj, **options)
    except Exception:
        log.exception("the %s renderer %s failed; showing the plain picture", kind, point.value)
        return None


def engine(name: str) -> Callable[..., Any]:
    """The engine's function ``name`` (``run``, ``backfill``), as the installed nbflow declares it."""
    point = _points(ENGINE_GROUP).get(name)
    if point is None:
        raise NotInstalledError(ENGINE_GROUP, name)
    return point.load()
