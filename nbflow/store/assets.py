"""The store's assets: asset events, and which of them each consuming DAG has taken.

A mixin of :class:`nbflow.store.Store`, kept apart because it is its own concern. Events are
written by a task's outcome (in the transaction of :meth:`Store.record`) or from outside
(:meth:`emit_asset_event`: the command line, the REST API). A consuming DAG's run is created with
its events claimed in ``asset_dag_event`` in the same transaction (``Store.create_run(consume=...)``);
that table's primary key (dag, event) is what makes hosts that see the same events start one run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, exists, func, select

from nbflow.store import schema
from nbflow.store.engine import read_connection, write_transaction

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

_asset, _event = schema.asset, schema.asset_event
_consumer, _taken = schema.asset_consumer, schema.asset_dag_event
#: what a consumer's task sees of each triggering event (plain data, it travels to worker processes)
_EVENT_FIELDS = ("id", "uri", "source", "source_dag_id", "source_run_id", "source_task_id", "extra", "created_at")


class AssetMixin:
    """Assets of a :class:`Store`; needs its ``_engine``, ``url``, ``_upsert`` and ``_many``."""

    url: str
    _engine: Engine

    def _upsert(self, table: Any, keys: Any, conflict: Any) -> Any:  # provided by Store
        raise NotImplementedError

    def _add_asset_events(self, conn: Connection, events: Sequence[Mapping[str, Any]], now: datetime) -> list[int]:
        """Insert events (``uri``, ``source``, ``extra``, ``source_*``) and their assets if new. An
        event of a task's outlet also brings the asset's ``extra`` as its DAG defines it now
        (``asset_extra``); one from outside leaves what is stored."""
        ids: list[int] = []
        for item in events:
            asset_row = {"uri": item["uri"], "extra": dict(item.get("asset_extra") or {}), "created_at": now}
            keys = ("uri", "extra") if "asset_extra" in item else ("uri",)
            conn.execute(self._upsert(_asset, keys, ("uri",)), asset_row)
            row = {"uri": item["uri"], "source": item.get("source", "task"), "extra": dict(item.get("extra") or {}),
                   "source_dag_id": item.get("source_dag_id"), "source_run_id": item.get("source_run_id"),
                   "source_task_id": item.get("source_task_id"), "created_at": item.get("created_at") or now}
            ids.append(int(conn.execute(_event.insert().values(**row)).inserted_primary_key[0]))
        return ids

    def emit_asset_event(self, uri: str, *, source: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Record that asset ``uri`` was updated outside any task (``source`` is 'cli' or 'api');
        the event as stored. ``uri`` and ``extra`` are checked by the caller (nbflow.assets)."""
        now = datetime.now(UTC)
        with write_transaction(self._engine, self.url) as conn:
            (event_id,) = self._add_asset_events(conn, [{"uri": uri, "source": source, "extra": extra}], now)
        return {"id": event_id, "uri": uri, "source": source, "source_dag_id": None, "source_run_id": None,
                "source_task_id": None, "extra": dict(extra or {}), "created_at": now}

    def register_asset_consumer(self, dag_id: str) -> None:
        """Make ``dag_id`` a consumer from the newest event on; a known consumer keeps its start."""
        with write_transaction(self._engine, self.url) as conn:
            newest = conn.execute(select(func.max(_event.c.id))).scalar() or 0
            conn.execute(self._upsert(_consumer, ("dag_id",), ("dag_id",)),
                         {"dag_id": dag_id, "since_event_id": int(newest), "created_at": datetime.now(UTC)})

    def pending_asset_events(self, dag_id: str, uris: Sequence[str]) -> list[dict[str, Any]]:
        """Events of ``uris`` newer than the consumer's start that no run of ``dag_id`` has taken,
        oldest first: what its asset condition is evaluated over."""
        query = (
            select(*(_event.c[name] for name in _EVENT_FIELDS))
            .join(_consumer, _consumer.c.dag_id == dag_id)
            .where(_event.c.uri.in_(list(uris)), _event.c.id > _consumer.c.since_event_id,
                   ~exists().where(and_(_taken.c.dag_id == dag_id, _taken.c.event_id == _event.c.id)))
            .order_by(_event.c.id)
        )
        with read_connection(self._engine, self.url) as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def _take_asset_events(self, conn: Connection, dag_id: str, run_pk: int, event_ids: Sequence[int]) -> None:
        """Claim events for a run of ``dag_id``; a primary-key conflict means another host took them
        (the caller's transaction then fails and creates nothing)."""
        conn.execute(_taken.insert(), [{"dag_id": dag_id, "event_id": int(i), "run_pk": run_pk} for i in event_ids])

    def triggering_asset_events(self, run_pk: int) -> dict[str, list[dict[str, Any]]]:
        """The events that started run ``run_pk``: uri -> events, oldest first, as plain data."""
        query = (
            select(*(_event.c[name] for name in _EVENT_FIELDS))
            .join(_taken, _taken.c.event_id == _event.c.id)
            .where(_taken.c.run_pk == run_pk)
            .order_by(_event.c.id)
        )
        found: dict[str, list[dict[str, Any]]] = {}
        with read_connection(self._engine, self.url) as conn:
            for row in conn.execute(query):
                found.setdefault(row.uri, []).append(dict(row._mapping))
        return found

    def list_assets(self) -> list[dict[str, Any]]:
        """Every asset with its extra, when it was first seen, and its newest event (or None)."""
        newest = select(_event.c.uri, func.max(_event.c.id).label("last_id")).group_by(_event.c.uri).subquery()
        query = (
            select(_asset, newest.c.last_id)
            .outerjoin(newest, newest.c.uri == _asset.c.uri)
            .order_by(_asset.c.uri)
        )
        with read_connection(self._engine, self.url) as conn:
            rows = [dict(row._mapping) for row in conn.execute(query)]
            ids = [r["last_id"] for r in rows if r["last_id"] is not None]
            events = {
                row.id: dict(row._mapping)
                for row in conn.execute(select(*(_event.c[n] for n in _EVENT_FIELDS)).where(_event.c.id.in_(ids)))
            } if ids else {}
        for row in rows:
            row["last_event"] = events.get(row.pop("last_id"))
        return rows

    def list_asset_events(self, uri: str | None = None, *, limit: int = 100) -> list[dict[str, Any]]:
        """The newest events first, of one asset if ``uri`` is given."""
        query = select(*(_event.c[n] for n in _EVENT_FIELDS)).order_by(_event.c.id.desc()).limit(int(limit))
        if uri is not None:
            query = query.where(_event.c.uri == uri)
        with read_connection(self._engine, self.url) as conn:
            return [dict(row._mapping) for row in conn.execute(query)]
