"""The notebook widgets in one place: ``from nbflow.jupyter.widgets import DagGraph, RunsGrid``."""

from __future__ import annotations

from nbflow.jupyter.dashboard import Dashboard, dashboard
from nbflow.jupyter.details import DetailsPanel
from nbflow.jupyter.graph_widget import DagGraph
from nbflow.jupyter.runs_grid import RunsGrid

__all__ = ["DagGraph", "Dashboard", "DetailsPanel", "RunsGrid", "dashboard"]
