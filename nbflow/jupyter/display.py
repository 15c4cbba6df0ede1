"""What a ``DAG`` shows as the last expression of a cell (and under ``%%dag``).

The bundle has the live :class:`~nbflow.jupyter.graph_widget.DagGraph` for a front end with a kernel,
and the same graph as a static SVG (``image/svg+xml``, and inline in ``text/html``) for nbconvert,
GitHub and any viewer without one. Building the widget can fail (no widget library, a store that
does not open); the picture is then all there is, and displaying never raises.
"""

from __future__ import annotations

import logging
from collections.abc import Container, Mapping
from html import escape
from typing import TYPE_CHECKING, Any

from nbflow.jupyter.graph import MAX_ELEMENTS, GraphModel

if TYPE_CHECKING:
    from nbflow.dag import DAG

log = logging.getLogger(__name__)

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def static_svg(dag: DAG, *, max_elements: int = MAX_ELEMENTS, model: GraphModel | None = None,
               states: Mapping[str, Any] | None = None) -> str:
    from nbflow.jupyter.svg import render_svg

    model = model or GraphModel.from_dag(dag, max_elements=max_elements)
    return render_svg(model, states, title=f"DAG {dag.dag_id} — {len(dag.task_dict)} tasks, {dag.timetable.description}")


def dag_bundle(dag: DAG, include: Container[str] | None = None, exclude: Container[str] | None = None) -> dict[str, Any]:
    """The MIME bundle of a DAG: the graph widget's view, an SVG (coloured like the widget, by the
    run it shows), HTML with the SVG, plain text."""
    bundle: dict[str, Any] = {"text/plain": repr(dag)}
    model: GraphModel | None = None
    states: dict[str, str] = {}
    wanted = (include is None or WIDGET_MIME in include) and not (exclude is not None and WIDGET_MIME in exclude)
    try:
        model = GraphModel.from_dag(dag)
    except Exception:
        log.exception("laying out %s failed", dag.dag_id)
    if wanted and model is not None:
        try:
            from nbflow.jupyter.graph_widget import DagGraph

            graph = DagGraph(dag, model=model)
            graph.flush()
            states = graph.states
            view = graph._repr_mimebundle_()
            if view and WIDGET_MIME in view:
                bundle[WIDGET_MIME] = view[WIDGET_MIME]
        except Exception:
            log.exception("the graph widget of %s could not be built; showing the picture", dag.dag_id)
    try:
        svg = static_svg(dag, model=model, states=states)
        bundle["image/svg+xml"] = svg
        bundle["text/html"] = f"<div class='nbflow-dag' data-dag-id='{escape(dag.dag_id)}'>{svg}</div>"
    except Exception:  # a picture that cannot be drawn must not hide the rest
        log.exception("drawing %s as SVG failed", dag.dag_id)
        bundle["text/html"] = dag._repr_html_()
    return bundle
