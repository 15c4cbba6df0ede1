"""The JupyterLab extension colours states exactly as the notebook widget does."""

from __future__ import annotations

import json
import re
from pathlib import Path

from nbflow.jupyter.graph import STATE_STYLES

STATES_TS = Path(__file__).resolve().parents[1] / "labextension" / "src" / "states.ts"
ENTRY = re.compile(r"^\s*(\w+): \{ background: '([^']+)', border: '([^']+)', text: '([^']+)', label: '([^']+)' \},?$", re.M)


def test_lab_extension_state_colours_match_the_widget() -> None:
    source = STATES_TS.read_text()
    table = source[source.index("STATE_STYLES"):source.index("};")]
    found = {m[1]: {"background": m[2], "border": m[3], "text": m[4], "label": m[5]} for m in ENTRY.finditer(table)}
    expected = {state: {k: style[k] for k in ("background", "border", "text", "label")} for state, style in STATE_STYLES.items()}
    assert found == expected, json.dumps({"lab": found, "widget": expected}, indent=1)


def test_lab_extension_package_points_into_the_python_package() -> None:
    package = json.loads((STATES_TS.parents[1] / "package.json").read_text())
    assert package["jupyterlab"]["extension"] is True
    assert (STATES_TS.parents[1] / package["jupyterlab"]["outputDir"]).resolve() == STATES_TS.parents[2] / "nbflow" / "labextension"
    install = json.loads((STATES_TS.parents[1] / "install.json").read_text())
    assert install["packageName"] == "nbflow"


def test_lab_extension_ranks_states_as_the_widget_does() -> None:
    """The graph (before the server's own ranking arrives) and the grid's group rows colour a
    group by its worst state in the same order as the notebook's folded nodes."""
    from nbflow.jupyter.graph import SEVERITY

    for name in ("graph.ts", "grid.ts"):
        source = (STATES_TS.parent / name).read_text()
        table = source[source.index("const SEVERITY = ["):]
        table = table[:table.index("];")]
        found = [s if s != "NO_STATUS" else "no_status" for s in re.findall(r"'(\w+)'|\b(NO_STATUS)\b", table) for s in s if s]
        assert found == list(SEVERITY), (name, found)
