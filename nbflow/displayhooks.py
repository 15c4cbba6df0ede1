"""How a model object shows itself in a notebook without the model importing a view.

A ``DAG`` displayed as the last expression of a cell should show as its live graph, but the model
layer must not depend on widgets. The views declare what they draw as entry points in the group
``nbflow.display`` (nbflow's own: ``dag = "nbflow.jupyter.display:dag_bundle"``), and a model
object's ``_repr_mimebundle_`` asks here for the renderer of its kind. Nothing is installed, or
the renderer fails: the object falls back to its plain picture, and displaying never raises.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

log = logging.getLogger(__name__)

GROUP = "nbflow.display"


@functools.cache
def _renderers() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {point.name: point for point in entry_points(group=GROUP)}


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
