"""``Dashboard``: every DAG the store knows, at a glance, with its import errors.

One row per DAG: a pause switch (on while active, as in the Lab sidebar), the schedule in words (the cron on hover), the next run in local time, owner, tags, the last run's
state, how many runs are running and failed, and a strip of the last run's task states. Clicking a
DAG opens its :class:`~nbflow.jupyter.graph_widget.DagGraph` below the table; the DAG object is the
one built in this kernel, else it is loaded from its file. A DAG defined in another kernel has no
button: its row says where it lives. The next run is asked as the Lab sidebar asks it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from nbflow.jupyter.graph import style_for
from nbflow.jupyter.timefmt import local_time

if TYPE_CHECKING:
    from nbflow.dag import DAG
    from nbflow.jupyter.graph_widget import DagGraph
    from nbflow.store import Store
    from nbflow.store.queries import DagOverview

COLUMNS = ["", "DAG", "schedule", "next run", "owner", "tags", "last run", "running", "failed", "last run's tasks"]
WIDTHS = "88px minmax(120px, 170px) minmax(140px, 220px) 170px 70px 90px 80px 55px 50px minmax(100px, 1fr)"
STRIP_MAX = 30


def state_strip(states: Sequence[str], limit: int = STRIP_MAX) -> str:
    """A row of small squares, one per task state, coloured by ``style_for``."""
    squares = "".join(
        f"<span class='nbflow-cell' data-state='{escape(s)}' title='{escape(style_for(s)['label'])}' "
        f"style='display:inline-block;width:7px;height:12px;margin-right:1px;background:{style_for(s)['background']};"
        f"border:1px solid {style_for(s)['border']}'></span>"
        for s in states[:limit]
    )
    more = f"<small> +{len(states) - limit}</small>" if len(states) > limit else ""
    return f"<div style='white-space:nowrap;overflow:hidden'>{squares}{more}</div>"


def schedule_words(row: Mapping[str, Any], dag: DAG | None) -> str:
    """The schedule in words: from the DAG built in this kernel, else from what the store has
    (a cron, a preset, "manual", ...), else the stored text as it is."""
    if dag is not None:
        try:
            return dag.timetable.summary
        except Exception:
            pass
    text = str(row.get("schedule") or "")
    if not text or text == "manual":
        return "manual runs only"
    expression = text.rsplit(" (", 1)[0] if text.endswith(")") else text
    try:
        from nbflow.cronwords import describe_cron

        words = describe_cron(expression)
    except Exception:
        return text
    return f"{words} ({row['timezone']})" if row.get("timezone") else words


def next_run_at(row: Mapping[str, Any], dag: DAG | None) -> datetime | None:
    """The next scheduled time, asked as the Lab sidebar asks it
    (:func:`nbflow.store.queries.next_run_times`): from the DAG built in this kernel, else rebuilt
    from the stored schedule, zone and dates."""
    from nbflow.store.queries import next_run_times

    try:
        upcoming = next_run_times(row, 1, dag)
    except Exception:  # a schedule only its file can rebuild: what a scheduler stored, if any
        upcoming = []
    return upcoming[0] if upcoming else row.get("next_run_at")


def where_defined(row: Mapping[str, Any], dag: DAG | None) -> tuple[bool, str]:
    """Whether this kernel can open the DAG's graph, and where the DAG lives: built in this kernel;
    in a file or a notebook that exists (the graph loads it from there, as the server does); or in
    another kernel with nothing to load (an interactive session, a file that is gone), which only
    that kernel can show."""
    import os

    if dag is not None:
        return True, "this kernel"
    fileloc = str(row.get("fileloc") or "")
    if fileloc.endswith(".ipynb") and os.path.exists(fileloc):
        return True, f"another kernel, by the notebook {fileloc} (loaded from its %%dag cells)"
    if fileloc.endswith(".py") and os.path.exists(fileloc):
        return True, f"the file {fileloc}"
    if fileloc.endswith((".py", ".ipynb")):
        return False, f"the file {fileloc}, which is gone: run its %%dag cell where it is now"
    return False, "another kernel (an interactive session): show its graph there"


def _short_where(where: str) -> str:
    """What the dashboard's row says under the DAG's name (the whole text is its tooltip)."""
    import os
    import re

    if where == "this kernel":
        return ""
    found = re.search(r"(?:notebook|file) (.+?\.(?:ipynb|py))", where)
    name = os.path.basename(found.group(1)) if found else ""
    if where.startswith("another kernel"):
        return f"another kernel: {name}" if name else "another kernel"
    return f"{name} (gone)" if "gone" in where else name


def summarise(store: Store, row: Mapping[str, Any], dag: DAG | None = None,
              overview: DagOverview | None = None) -> dict[str, Any]:
    """What the dashboard shows of one DAG; ``overview`` is what :func:`nbflow.store.queries.dags_overview`
    read of it already (read here when not given)."""
    from nbflow.store import queries

    overview = overview or queries.dag_overview(store, row, 1)
    last = overview.last_run
    openable, where = where_defined(row, dag)
    return {
        "dag_id": row["dag_id"], "paused": bool(row["is_paused"]), "schedule": schedule_words(row, dag),
        "cron": row.get("schedule") or "-",
        "next_run": next_run_at(row, dag), "openable": openable, "where": where, "owner": row.get("owner") or "-", "tags": list(row.get("tags") or []),
        "last_state": last["state"] if last else None,
        "running": overview.counts.get("running", 0),
        "failed": overview.counts.get("failed", 0),
        "recent": list(queries.task_states(store, last["id"]).values()) if last else [],
    }


def import_errors_html(errors: Sequence[Mapping[str, Any]]) -> str:
    if not errors:
        return ""
    items = "".join(
        f"<details><summary><code>{escape(str(e['fileloc']))}</code>: {escape(e.get('summary') or '')}</summary>"
        f"<pre style='max-height:200px;overflow:auto'>{escape(e.get('traceback') or '')}</pre></details>"
        for e in errors
    )
    return f"<div class='nbflow-import-errors' style='color:#b30000'><b>import errors ({len(errors)})</b>{items}</div>"


def find_dag(dag_id: str, fileloc: str | None) -> DAG:
    """The DAG built in this kernel under ``dag_id``, else the one its file builds; else an
    :class:`~nbflow.errors.InvalidRequestError` saying where the DAG lives."""
    from nbflow.context import built_dags

    built = built_dags().get(dag_id)
    if built is not None:
        return built
    if fileloc and fileloc.endswith((".py", ".ipynb")):
        import os

        if os.path.exists(fileloc):
            from nbflow.engine.discovery import load_file
            from nbflow.errors import InvalidRequestError

            dags, failure = load_file(fileloc)
            for candidate in dags:
                if candidate.dag_id == dag_id:
                    return candidate
            why = failure.summary if failure is not None else (
                f"it defines {', '.join(d.dag_id for d in dags) or 'no DAG'} now")
            _, where = where_defined({"fileloc": fileloc}, None)
            raise InvalidRequestError(f"defined in {where}, which does not build it here ({why}); "
                                      "open the graph in that notebook", dag_id)
    from nbflow.errors import InvalidRequestError

    _, where = where_defined({"fileloc": fileloc}, None)
    raise InvalidRequestError(f"cannot be opened in this kernel: it is defined in {where}", dag_id)


def pause_switch(dag_id: str, paused: bool) -> w.Checkbox:
    """A switch, as in the Lab sidebar: on (checked) while the DAG is active, off when paused. Not a
    button: a "▶ active" button reads as "run it now"."""
    return w.Checkbox(value=not paused, description="paused" if paused else "active", indent=False,
                      layout=w.Layout(width="88px"),
                      tooltip=f"{dag_id}: on while its schedule is active; off pauses it (runs in progress finish)")


class Dashboard(w.VBox):
    """Every DAG in the store; ``refresh()`` reads it again, ``open(dag_id)`` shows a DAG's graph."""

    def __init__(self, **kwargs: Any) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.toggles: dict[str, w.Checkbox] = {}
        self.buttons: dict[str, w.Button] = {}
        self.table = w.GridBox(layout=w.Layout(grid_template_columns=WIDTHS, grid_gap="2px 6px", align_items="center"))
        self.errors = w.HTML()
        self.message = w.HTML()
        self.refresh_button = w.Button(description="refresh", icon="refresh", layout=w.Layout(width="auto"))
        self.refresh_button.on_click(lambda _: self.refresh())
        self.graph_area = w.VBox()
        self.graph: DagGraph | None = None
        super().__init__(children=[w.HBox([self.refresh_button, self.message]), self.table, self.errors,
                                   self.graph_area], **kwargs)
        self.refresh()

    def refresh(self) -> None:
        from nbflow.context import built_dags
        from nbflow.store import Store, queries

        try:
            with Store.open() as store:
                built = built_dags()
                found = queries.dags_overview(store, 1)
                rows = [summarise(store, o.row, built.get(o.dag_id), o) for o in found.dags]
                errors = found.import_errors
        except Exception as exc:
            self.message.value = f"<span style='color:#b30000'>reading the store failed: {escape(str(exc))}</span>"
            return
        self.rows = {row["dag_id"]: row for row in rows}
        self.errors.value = import_errors_html(errors)
        self.message.value = f"<small>{len(rows)} DAG(s)</small>" if rows else "<small>no DAGs yet</small>"
        cells: list[w.Widget] = [w.HTML(f"<b>{escape(name)}</b>") for name in COLUMNS]
        self.toggles, self.buttons = {}, {}
        for row in rows:
            toggle = pause_switch(row["dag_id"], row["paused"])
            toggle.observe(self._toggled(row["dag_id"]), "value")
            note = w.HTML(f"<small class='nbflow-where' style='color:#666' title='defined in {escape(row['where'])}'>"
                          f"{escape(_short_where(row['where']))}</small>")
            if row["openable"]:
                button = w.Button(description=row["dag_id"], tooltip=f"open the graph (defined in {row['where']})",
                                  layout=w.Layout(width="auto"))
                button.on_click(self._clicked(row["dag_id"]))
                self.buttons[row["dag_id"]] = button
                name: w.Widget = button if row["where"] == "this kernel" else w.VBox([button, note])
            else:  # only the kernel that defined it can draw it: say where that is, with no button
                name = w.HTML(f"<span class='nbflow-elsewhere' title='defined in {escape(row['where'])}'>"
                              f"{escape(row['dag_id'])}</span><br>{note.value}")
            self.toggles[row["dag_id"]] = toggle
            last = row["last_state"]
            cells += [
                toggle, name, w.HTML(f"<span title='{escape(row['cron'])}'>{escape(row['schedule'])}</span>"),
                w.HTML(f"<small>{escape(local_time(row['next_run'], seconds=False))}</small>"),
                w.HTML(escape(row["owner"])), w.HTML(f"<small>{escape(', '.join(row['tags']))}</small>"),
                w.HTML(f"<span style='color:{style_for(last)['border']}'>{escape(last or '-')}</span>"),
                w.HTML(str(row["running"])),
                w.HTML(f"<span style='color:{'#b30000' if row['failed'] else 'inherit'}'>{row['failed']}</span>"),
                w.HTML(state_strip(row["recent"])),
            ]
        self.table.children = cells

    def _toggled(self, dag_id: str) -> Any:
        def toggled(change: dict[str, Any]) -> None:
            try:
                self.set_paused(dag_id, not change["new"])  # the switch is on while the DAG is active
            except Exception as exc:
                self.message.value = f"<span style='color:#b30000'>pausing {escape(dag_id)} failed: {escape(str(exc))}</span>"

        return toggled

    def set_paused(self, dag_id: str, paused: bool) -> None:
        from nbflow.engine.controls import pause, unpause

        (pause if paused else unpause)(dag_id)
        toggle = self.toggles.get(dag_id)
        if toggle is not None:
            toggle.description = "active" if not paused else "paused"
        self.message.value = f"<small>{escape(dag_id)} {'paused' if paused else 'unpaused'}</small>"

    def _clicked(self, dag_id: str) -> Any:
        def clicked(_button: Any) -> None:
            try:
                self.open_dag(dag_id)
            except Exception as exc:
                self.message.value = f"<span style='color:#b30000'>opening {escape(dag_id)} failed: {escape(str(exc))}</span>"

        return clicked

    def open_dag(self, dag_id: str) -> DagGraph:
        """Show ``dag_id``'s graph below the table and return it."""
        from nbflow.jupyter.graph_widget import DagGraph
        from nbflow.store import Store

        with Store.open() as store:
            row = store.get_dag(dag_id)
        dag = find_dag(dag_id, row.get("fileloc") if row else None)
        if self.graph is not None:
            self.graph.close()
        self.graph = DagGraph(dag)
        self.graph_area.children = [w.HTML(f"<b>{escape(dag_id)}</b>"), self.graph]
        self.graph.refit_soon()  # shown inside the dashboard, not displayed on its own
        return self.graph


def dashboard() -> Dashboard:
    """Every DAG in the store, with pause toggles, recent states and import errors."""
    return Dashboard()
