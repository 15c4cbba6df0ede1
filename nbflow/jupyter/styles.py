"""How task states and operator kinds look, in every view: one mapping, pure functions.

The notebook widget, the static SVG, the runs grid, the dashboard and the JupyterLab extension all
colour by :data:`STATE_STYLES`, so a state reads the same wherever it is shown.
"""

from __future__ import annotations

from typing import Any

from nbflow.states import TaskState

#: the key for a task that has no task instance (the DAG has not run, or the run has no row for it)
NO_STATUS = "no_status"


def _style(background: str, border: str, text: str, label: str, symbol: str) -> dict[str, str]:
    return {"background": background, "border": border, "text": text, "label": label, "symbol": symbol}


#: The one mapping from task state to look, with colours close to Airflow's so that a run reads at a
#: glance to anyone who knows Airflow. ``symbol`` is what count labels use (``480✓ 20▶``).
STATE_STYLES: dict[str, dict[str, str]] = {
    TaskState.SUCCESS.value: _style("#008000", "#006400", "#ffffff", "success", "✓"),
    TaskState.RUNNING.value: _style("#00ff00", "#008000", "#000000", "running", "▶"),
    TaskState.FAILED.value: _style("#ff0000", "#b30000", "#ffffff", "failed", "✗"),
    TaskState.UPSTREAM_FAILED.value: _style("#ffa500", "#cc8400", "#000000", "upstream failed", "⚠"),
    TaskState.UP_FOR_RETRY.value: _style("#ffd700", "#b39700", "#000000", "up for retry", "↻"),
    TaskState.UP_FOR_RESCHEDULE.value: _style("#40e0d0", "#2a9d92", "#000000", "up for reschedule", "⏸"),
    TaskState.QUEUED.value: _style("#808080", "#595959", "#ffffff", "queued", "…"),
    TaskState.SCHEDULED.value: _style("#d2b48c", "#a58b66", "#000000", "scheduled", "◷"),
    TaskState.SKIPPED.value: _style("#ff69b4", "#c9518d", "#000000", "skipped", "↷"),
    TaskState.REMOVED.value: _style("#d3d3d3", "#a9a9a9", "#000000", "removed", "−"),
    TaskState.NONE.value: _style("#ffffff", "#808080", "#000000", "none", "○"),
    NO_STATUS: _style("#ffffff", "#c0c0c0", "#000000", "no status", "·"),
}

#: Worst first: the state whose colour a folded node or a group shows when its tasks disagree. A
#: node that is mostly green but has one failure must look failed, and one whose tasks have not all
#: finished must not look finished: every state still to come ranks before the finished ones.
SEVERITY: tuple[str, ...] = (
    "failed", "upstream_failed", "up_for_retry", "running", "up_for_reschedule", "queued", "scheduled",
    "none", NO_STATUS, "success", "skipped", "removed",
)
_RANK = {state: i for i, state in enumerate(SEVERITY)}

#: Ordered (state, style) pairs for a legend: outcomes first, then what is still to come.
LEGEND: list[tuple[str, dict[str, str]]] = [
    (state, STATE_STYLES[state]) for state in (
        "success", "failed", "upstream_failed", "skipped", "running", "up_for_retry",
        "up_for_reschedule", "queued", "scheduled", "none", "removed", NO_STATUS,
    )
]

#: Operator kind -> cytoscape node shape; "group" is a collapsed task group, "mixed" a folded node
#: whose tasks are of different kinds.
KIND_SHAPES: dict[str, str] = {
    "python": "round-rectangle", "bash": "rectangle", "notebook": "barrel", "sensor": "ellipse",
    "branch": "diamond", "short_circuit": "diamond", "empty": "ellipse", "custom": "octagon",
    "http": "cut-rectangle", "email": "rhomboid", "group": "round-rectangle", "mixed": "octagon",
}
#: A short badge per kind, for views that draw one beside the label.
KIND_BADGES: dict[str, str] = {
    "python": "py", "bash": "sh", "notebook": "nb", "sensor": "sensor", "branch": "branch",
    "short_circuit": "short", "empty": "", "custom": "op", "http": "http", "email": "mail", "group": "group", "mixed": "mixed",
}
#: (width, height) per kind in layout units; an empty task is a small joint, not a step of work.
KIND_SIZES: dict[str, tuple[float, float]] = {"empty": (70.0, 28.0)}
DEFAULT_SIZE: tuple[float, float] = (150.0, 40.0)

def state_key(state: Any) -> str:
    """The plain string for a state (``TaskState`` members hash by name, not value, so never use
    them as dict keys directly); ``None`` and unknown values become ``"no_status"``."""
    if state is None:
        return NO_STATUS
    value = getattr(state, "value", state)
    return value if isinstance(value, str) and value in STATE_STYLES else NO_STATUS


def style_for(state: str | None) -> dict[str, str]:
    """The style of one state; unknown states look like "no status" so a view never breaks."""
    return dict(STATE_STYLES[state_key(state)])


def kind_shape(kind: str) -> str:
    return KIND_SHAPES.get(kind, KIND_SHAPES["custom"])


def node_size(kind: str) -> tuple[float, float]:
    return KIND_SIZES.get(kind, DEFAULT_SIZE)
