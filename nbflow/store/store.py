"""The store: the single source of truth every scheduler host reads and writes.

Methods return plain dicts keyed by column name so callers depend on the schema, never on
SQLAlchemy. Every write is one transaction; :meth:`Store.record` applies a whole batch of task
outcomes at once because it runs after every task and its cost is the floor of task latency.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Table,
    bindparam,
    case,
    delete,
    func,
    inspect,
    literal_column,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.expression import Executable

from nbflow.errors import DagNotFoundError, SchemaVersionError
from nbflow.mapping import UNMAPPED, split_key, ti_key
from nbflow.store import schema
from nbflow.store.coltypes import MYSQL_DIALECTS
from nbflow.store.engine import DriverStatement, make_engine, read_connection, safe_url, url_source, write_transaction
from nbflow.store.migrate import (
    HEAD_REVISION,
    create_at_head,
    read_version,
    serialize_schema_changes,
)
from nbflow.store.assets import AssetMixin
from nbflow.store.vault import VaultMixin

if TYPE_CHECKING:
    from nbflow.settings import Settings

_dag, _run, _ti = schema.dag, schema.dag_run, schema.task_instance
_try, _output, _import_error, _event = schema.task_try, schema.task_output, schema.import_error, schema.event
_xcom = schema.task_xcom
_host, _pool = schema.scheduler_host, schema.pool
#: what every claim, adoption, clear or mark sets a task instance's fence to (a literal, not a bound
#: parameter, so the hot path's precompiled statements need no value for it)
_NEXT_FENCE = _ti.c.fence + literal_column("1")
#: task instance states that a host holds: it claimed them and is (about to be) running them
HELD_STATES = ("queued", "running")

_COLUMNS = {table.name: frozenset(table.c.keys()) for table in schema.metadata.tables.values()}
_TASK_DEFAULTS: dict[str, Any] = {
    "state": "none", "try_number": 0, "max_tries": 0, "operator": None, "pool": None, "priority_weight": 1,
    "map_index": UNMAPPED,
}


def _now() -> datetime:
    return datetime.now(UTC)


def _check_keys(table: Table, keys: Iterable[str], *, fixed: Iterable[str] = ()) -> None:
    unknown = set(keys) - _COLUMNS[table.name] | (set(keys) & set(fixed))
    if unknown:
        raise TypeError(
            f"cannot set {', '.join(sorted(unknown))} on {table.name}; settable columns: "
            f"{', '.join(sorted(_COLUMNS[table.name] - set(fixed)))}"
        )


def _rows(result: Any) -> list[dict[str, Any]]:
    return [dict(row) for row in result.mappings()]


def _full_rows(table: Table, rows: Iterable[Mapping[str, Any]], **fixed: Any) -> list[dict[str, Any]]:
    """Rows with every column present, so one compiled statement serves the whole batch."""
    columns = _COLUMNS[table.name]
    out = []
    for row in rows:
        _check_keys(table, row)
        full = dict.fromkeys(columns)
        full.update(row)
        full.update(fixed)
        out.append(full)
    return out


class Store(VaultMixin, AssetMixin):
    """Typed access to the metadata database at ``url`` (SQLite file, PostgreSQL or MySQL/MariaDB); connections and
    variables come from :class:`VaultMixin`."""

    url: str

    def __init__(self, url: str, *, busy_timeout: float = 30.0) -> None:
        self.url = url
        self._engine = make_engine(url, busy_timeout=busy_timeout)
        self._dialect = self._engine.dialect.name
        # MySQL/MariaDB: no UPDATE ... RETURNING, no ON CONFLICT (see _insert and _update_returning)
        self._mysql = self._dialect in MYSQL_DIALECTS
        self._statements: dict[Any, Executable] = {}
        self._event_insert = _event.insert()
        # SQLite spends less time on a statement than SQLAlchemy spends preparing it, so the
        # hot path runs precompiled statements on the driver there.
        self._on_driver = self._dialect == "sqlite"
        self._driver_statements: dict[Any, DriverStatement] = {}

    def __repr__(self) -> str:
        return f"Store({safe_url(self.url)!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @classmethod
    def open(cls, settings: Settings | None = None, *, create: bool = True) -> Store:
        """The store of ``settings`` (default: the current ones), ready to use.

        An empty database is created at head directly from the tables when ``create`` is true, so
        the first run in a fresh ``NBFLOW_HOME`` needs no separate ``nbflow db init``.
        """
        if settings is None:
            from nbflow.settings import get_settings

            settings = get_settings()
        with url_source(settings.source_of("database_url")):
            store = cls(settings.database_url, busy_timeout=settings.db_busy_timeout)
            store._settings = settings  # whose Fernet key encrypts its secrets
            try:
                found = store.schema_version()
                if found is None and create:
                    found = store._create_if_empty()
                if found != HEAD_REVISION:
                    raise SchemaVersionError(safe_url(store.url), found, HEAD_REVISION)
            except BaseException:
                store.close()
                raise
        return store

    def _create_if_empty(self) -> str | None:
        with write_transaction(self._engine, self.url) as conn:
            serialize_schema_changes(conn)
            found = read_version(conn)
            if found is None and not set(inspect(conn).get_table_names()) & _COLUMNS.keys():
                create_at_head(conn)
                found = HEAD_REVISION
        return found

    def close(self) -> None:
        self._engine.dispose()

    def schema_version(self) -> str | None:
        with read_connection(self._engine, self.url) as conn:
            return read_version(conn)

    def check_schema(self) -> None:
        found = self.schema_version()
        if found != HEAD_REVISION:
            raise SchemaVersionError(safe_url(self.url), found, HEAD_REVISION)

    # -- statements -------------------------------------------------------------------------

    def _insert(self, table: Table) -> Any:
        if self._dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif self._dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        elif self._mysql:
            from sqlalchemy.dialects.mysql import insert
        else:
            raise NotImplementedError(f"the nbflow store does not support {self._dialect} yet")
        return insert(table)

    def _upsert(self, table: Table, keys: Sequence[str], conflict: Sequence[str]) -> Executable:
        """INSERT ... ON CONFLICT DO UPDATE of ``keys``, built once per (table, keys)."""
        cache_key = ("upsert", table.name, tuple(keys), tuple(conflict))
        statement = self._statements.get(cache_key)
        if statement is None:
            insert = self._insert(table)
            if self._mysql:  # ON DUPLICATE KEY UPDATE: the conflict is on whichever key the row hits
                changed = {key: insert.inserted[key] for key in keys if key not in conflict}
                statement = insert.on_duplicate_key_update(changed or {conflict[0]: table.c[conflict[0]]})
                self._statements[cache_key] = statement
                return statement
            changed = {key: insert.excluded[key] for key in keys if key not in conflict}
            if changed:
                statement = insert.on_conflict_do_update(index_elements=list(conflict), set_=changed)
            else:
                statement = insert.on_conflict_do_nothing(index_elements=list(conflict))
            self._statements[cache_key] = statement
        return statement

    def _task_update(self, keys: frozenset[str], fenced: bool) -> Executable:
        """A fenced update writes only a row that still has the writer's fence; an unfenced one
        (outside any claim) raises the fence, so the row's holder is refused from then on."""
        cache_key = ("task_update", keys, fenced)
        statement = self._statements.get(cache_key)
        if statement is None:
            where = [_ti.c.run_pk == bindparam("w_run_pk"), _ti.c.task_id == bindparam("w_task_id"),
                     _ti.c.map_index == bindparam("w_map_index")]
            values: dict[str, Any] = {key: bindparam(f"v_{key}") for key in keys}
            if fenced:
                where.append(_ti.c.fence == bindparam("w_fence"))
            else:
                values["fence"] = _NEXT_FENCE
            statement = update(_ti).where(*where).values(values)
            self._statements[cache_key] = statement
        return statement

    def _many(self, conn: Connection, statement: Executable, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute ``statement`` for each of ``rows`` (which all have the same keys)."""
        if not self._on_driver:
            conn.execute(statement, list(rows))
            return
        keys = tuple(rows[0])
        prepared = self._driver_statements.get((statement, keys))
        if prepared is None:
            prepared = DriverStatement(statement, self._engine.dialect, keys)
            self._driver_statements[(statement, keys)] = prepared
        prepared.run(conn, rows)

    def _run_update(self, keys: frozenset[str]) -> Executable:
        cache_key = ("run_update", keys)
        statement = self._statements.get(cache_key)
        if statement is None:
            statement = update(_run).where(_run.c.id == bindparam("w_run_pk")).values(
                {key: bindparam(key) for key in keys}
            )
            self._statements[cache_key] = statement
        return statement

    # -- dags -------------------------------------------------------------------------------

    def upsert_dag(self, dag_id: str, **fields: Any) -> None:
        """Insert or update; columns not given keep their stored value (so a re-parse never unpauses)."""
        _check_keys(_dag, fields, fixed=("dag_id",))
        values = {"updated_at": _now(), **fields, "dag_id": dag_id}
        with write_transaction(self._engine, self.url) as conn:
            conn.execute(self._upsert(_dag, sorted(values), ("dag_id",)), values)

    def get_dag(self, dag_id: str) -> dict[str, Any] | None:
        with read_connection(self._engine, self.url) as conn:
            row = conn.execute(select(_dag).where(_dag.c.dag_id == dag_id)).mappings().first()
        return None if row is None else dict(row)

    def list_dags(self) -> list[dict[str, Any]]:
        with read_connection(self._engine, self.url) as conn:
            return _rows(conn.execute(select(_dag).order_by(_dag.c.dag_id)))

    def set_paused(self, dag_id: str, paused: bool) -> None:
        """Raises :class:`DagNotFoundError` for an unknown DAG, so a typo is not silently ignored."""
        with write_transaction(self._engine, self.url) as conn:
            result = conn.execute(
                update(_dag).where(_dag.c.dag_id == dag_id).values(is_paused=bool(paused), updated_at=_now())
            )
            if result.rowcount == 0:
                known = list(conn.execute(select(_dag.c.dag_id)).scalars())
                raise DagNotFoundError(dag_id, known)

    def move_fileloc(self, old: str, new: str) -> list[str]:
        """A file or folder was renamed (the Jupyter server saw it): the DAGs defined in ``old``, or in
        a file under the folder ``old``, now live at ``new``. Returns the ids of the DAGs moved."""
        old, new = old.rstrip("/"), new.rstrip("/")
        moved: list[str] = []
        with write_transaction(self._engine, self.url) as conn:
            rows = conn.execute(
                select(_dag.c.dag_id, _dag.c.fileloc).where(
                    (_dag.c.fileloc == old) | _dag.c.fileloc.startswith(old + "/", autoescape=True))
            ).all()
            for dag_id, fileloc in rows:
                conn.execute(update(_dag).where(_dag.c.dag_id == dag_id)
                             .values(fileloc=new + fileloc[len(old):], updated_at=_now()))
                moved.append(dag_id)
        return moved

    def delete_dag(self, dag_id: str) -> None:
        """Delete the DAG with its runs, task instances, tries and outputs; its events stay."""
        with write_transaction(self._engine, self.url) as conn:
            conn.execute(delete(_dag).where(_dag.c.dag_id == dag_id))

    # -- runs -------------------------------------------------------------------------------

    def create_run(
        self,
        *,
        dag_id: str,
        run_id: str,
        run_type: str,
        logical_date: datetime | None,
        data_interval_start: datetime | None,
        data_interval_end: datetime | None,
        conf: dict[str, Any] | None,
        state: str,
        task_rows: Sequence[Mapping[str, Any]],
        if_absent: bool = False,
        consume: Sequence[int] = (),
    ) -> int | None:
        """Create the run and all its task instances in one transaction; return the run's pk.

        With ``if_absent``, a run that already exists (another scheduler host created it first)
        gives ``None`` instead of an error: run ids of scheduled runs are derived from their
        logical date, so the unique (dag_id, run_id) makes creating a run idempotent.

        All at once because a run whose task instances are half written would look to another
        scheduler host like a run with fewer tasks.

        ``consume`` lists asset events the run takes (an asset-triggered run): they are claimed for
        the DAG in the same transaction, and when another host claimed one first nothing is created
        and the answer is ``None`` (with ``if_absent``).
        """
        now = _now()
        fixed = ("id", "run_pk", "dag_id", "run_id")
        for item in task_rows:
            _check_keys(_ti, item, fixed=fixed)
            if "task_id" not in item:
                raise TypeError(f"task row without task_id: {dict(item)!r}")
        keys = set(_TASK_DEFAULTS).union(*(item.keys() for item in task_rows))
        try:
            with write_transaction(self._engine, self.url) as conn:
                conn.execute(self._upsert(_dag, ("dag_id",), ("dag_id",)), {"dag_id": dag_id})
                run_pk = conn.execute(
                    _run.insert().values(
                        dag_id=dag_id, run_id=run_id, run_type=str(run_type), state=str(state),
                        logical_date=logical_date, data_interval_start=data_interval_start,
                        data_interval_end=data_interval_end, conf=conf, queued_at=now,
                    )
                ).inserted_primary_key[0]
                if task_rows:
                    rows = []
                    for item in task_rows:
                        row = {key: item.get(key, _TASK_DEFAULTS.get(key)) for key in keys}
                        row.update(run_pk=run_pk, dag_id=dag_id, run_id=run_id, updated_at=now)
                        row["state"] = str(row["state"])
                        rows.append(row)
                    conn.execute(_ti.insert(), rows)
                if consume:
                    self._take_asset_events(conn, dag_id, int(run_pk), consume)
            return int(run_pk)
        except IntegrityError:
            if if_absent and (consume or self.get_run(dag_id, run_id) is not None):
                return None
            raise

    def update_run(self, run_pk: int, **fields: Any) -> None:
        if not fields:
            return
        _check_keys(_run, fields, fixed=("id",))
        with write_transaction(self._engine, self.url) as conn:
            conn.execute(update(_run).where(_run.c.id == run_pk).values(fields))

    def get_run(self, dag_id: str, run_id: str) -> dict[str, Any] | None:
        with read_connection(self._engine, self.url) as conn:
            row = conn.execute(
                select(_run).where(_run.c.dag_id == dag_id, _run.c.run_id == run_id)
            ).mappings().first()
        return None if row is None else dict(row)

    def get_run_by_pk(self, run_pk: int) -> dict[str, Any] | None:
        with read_connection(self._engine, self.url) as conn:
            row = conn.execute(select(_run).where(_run.c.id == run_pk)).mappings().first()
        return None if row is None else dict(row)

    def list_runs(
        self, dag_id: str | None = None, *, limit: int | None = 50, states: Iterable[str] | None = None
    ) -> list[dict[str, Any]]:
        """Newest logical date first (runs without one last), then newest created first."""
        # MySQL has no NULLS LAST, and needs none: it sorts NULL first, so last when descending
        newest = _run.c.logical_date.desc() if self._mysql else _run.c.logical_date.desc().nulls_last()
        query = select(_run).order_by(newest, _run.c.id.desc())
        if dag_id is not None:
            query = query.where(_run.c.dag_id == dag_id)
        if states is not None:
            query = query.where(_run.c.state.in_([str(state) for state in states]))
        if limit is not None:
            query = query.limit(limit)
        with read_connection(self._engine, self.url) as conn:
            return _rows(conn.execute(query))

    def delete_run(self, run_pk: int) -> None:
        with write_transaction(self._engine, self.url) as conn:
            conn.execute(delete(_run).where(_run.c.id == run_pk))

    # -- task instances -----------------------------------------------------------------------

    def get_task_instances(self, run_pk: int) -> list[dict[str, Any]]:
        """In creation order, which is the order the run was planned in.

        The rows of a mapped task's instances come with it (``map_index`` 0, 1, ...); each row's
        ``ti_key`` is its engine name (``task_id`` or ``task_id[3]``)."""
        with read_connection(self._engine, self.url) as conn:
            return _keyed(_rows(conn.execute(select(_ti).where(_ti.c.run_pk == run_pk).order_by(_ti.c.id))))

    def get_task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int = UNMAPPED) -> dict[str, Any] | None:
        with read_connection(self._engine, self.url) as conn:
            row = conn.execute(
                select(_ti).where(_ti.c.dag_id == dag_id, _ti.c.run_id == run_id, _ti.c.task_id == task_id,
                                  _ti.c.map_index == map_index)
            ).mappings().first()
        return None if row is None else dict(row)

    def claim_task_instances(
        self,
        run_pk: int,
        task_ids: Sequence[str],
        host_id: str,
        *,
        from_states: Iterable[str] = ("scheduled",),
        to_state: str = "queued",
        try_numbers: Mapping[str, int] | None = None,
        seen: Mapping[str, int] | None = None,
        hostname: str | None = None,
    ) -> dict[str, int]:
        """Move the task instances still in ``from_states`` to ``to_state`` for ``host_id``.

        Returns ``{task_id: fence}`` for the task instances this call claimed, in the order asked;
        one another host claimed first is left out, so whoever gets it runs it and nobody else does.
        Each claim raises the row's fence by one, in the same update, and hands it to the claimer:
        the claimer's later writes of that task instance carry it (see :meth:`record`).

        ``seen`` (task id -> the fence the claimer last read) makes the claim a compare-and-swap: a
        row whose fence moved since (someone claimed, adopted, cleared or marked it) is not taken,
        so a host never starts a try decided from a stale view. With ``seen``, a row this host
        still holds with exactly that fence may be claimed from any state: its outcome is in this
        host's write buffer, and it is starting the task's next try.

        ``try_numbers`` (task id -> the try about to start) are written in the same update, and the
        try's row is created with them, carrying the claim's fence: a host killed right after the
        claim leaves the try behind in the history, and whoever takes the task over fails that try
        and starts the next one, never the same one again.
        """
        if not task_ids:
            return {}
        states = tuple(str(state) for state in from_states)
        to_state = str(to_state)
        now = _now()
        statement = self._claim_statement(states, to_state, fenced=seen is not None)
        wanted = list(dict.fromkeys(task_ids))
        split = [split_key(key) for key in wanted]
        params: dict[str, Any] = {"b_run_pk": run_pk, "b_host": host_id, "b_now": now,
                                  "b_ids": list(dict.fromkeys(task_id for task_id, _ in split))}
        if seen is not None:
            params["b_pairs"] = [(task_id, index, int(seen.get(key, 0))) for key, (task_id, index) in zip(wanted, split)]
        else:
            params["b_keys"] = split
        # One cached statement for the whole batch (its IN list is a parameter): a statement shaped
        # by the batch itself (a CASE of try numbers, a literal IN list) took about 1 ms to compile
        # at every claim, and a claim sits between every task and the next.
        with write_transaction(self._engine, self.url) as conn:
            if self._mysql:
                # the rows picked with FOR UPDATE SKIP LOCKED stay locked until the commit, so
                # each one's new fence is the one read plus one
                picked = conn.execute(statement, params).all()
                if picked:
                    conn.execute(self._claim_update(to_state),
                                 {"b_pks": [row[0] for row in picked], "b_host": host_id, "b_now": now})
                claimed = {ti_key(task_id, index): int(fence) + 1 for _pk, task_id, index, fence in picked}
            else:
                claimed = {ti_key(task_id, index): int(fence)
                           for task_id, index, fence in conn.execute(statement, params).all()}
            if claimed and try_numbers:
                numbered = [{"b_run_pk": run_pk, "b_task_id": split_key(key)[0], "b_map_index": split_key(key)[1],
                             "b_try_number": int(try_numbers[key])} for key in claimed if key in try_numbers]
                if numbered:
                    conn.execute(self._try_number_update(), numbered)
                rows = [{"run_pk": run_pk, "task_id": split_key(key)[0], "map_index": split_key(key)[1],
                         "try_number": int(try_numbers[key]), "state": to_state, "start_date": now,
                         "hostname": hostname, "fence": fence}
                        for key, fence in claimed.items() if key in try_numbers]
                if rows:
                    self._many(conn, self._try_claim_upsert(), rows)
        return {task_id: claimed[task_id] for task_id in wanted if task_id in claimed}

    def expand_task(
        self, run_pk: int, task_id: str, count: int, *, seen: int | None, row: Mapping[str, Any],
    ) -> dict[str, int] | None:
        """Give mapped task ``task_id`` its ``count`` instances, ready to be claimed; return
        ``{key: fence}`` of its own row and of each instance, or None when its row had moved on.

        One transaction, and a compare-and-swap of the task's own row (from ``none`` or
        ``scheduled``, with the fence ``seen`` when a host expands it) to ``running``: of two hosts
        expanding the same task, one makes the instances and the other reads them. Instances left by
        an earlier expansion (the task was cleared) are reused, so their tries stay numbered on;
        those past ``count`` go. ``row`` holds the columns of new instance rows (dag_id, run_id,
        max_tries, operator, pool, priority_weight)."""
        now = _now()
        where = [_ti.c.run_pk == run_pk, _ti.c.task_id == task_id, _ti.c.map_index == UNMAPPED,
                 _ti.c.state.in_(("none", "scheduled"))]
        if seen is not None:
            where.append(_ti.c.fence == seen)
        with write_transaction(self._engine, self.url) as conn:
            own_rows = self._update_returning(conn, where, dict(
                state="running", start_date=now, updated_at=now, end_date=None, fence=_NEXT_FENCE,
            ), (_ti.c.fence,))
            if not own_rows:
                return None
            own = own_rows[0][0]
            mine = (_ti.c.run_pk == run_pk, _ti.c.task_id == task_id)
            conn.execute(delete(_ti).where(*mine, _ti.c.map_index >= count))
            fences = {task_id: int(own)}
            for index, fence in self._update_returning(conn, (*mine, _ti.c.map_index >= 0), dict(
                    state="scheduled", claimed_by=None, updated_at=now, fence=_NEXT_FENCE,
            ), (_ti.c.map_index, _ti.c.fence)):
                fences[ti_key(task_id, index)] = int(fence)
            new = [{**_TASK_DEFAULTS, **row, "run_pk": run_pk, "task_id": task_id, "map_index": index,
                    "state": "scheduled", "updated_at": now, "fence": 0}
                   for index in range(count) if ti_key(task_id, index) not in fences]
            if new:
                conn.execute(_ti.insert(), new)
                fences.update({ti_key(task_id, item["map_index"]): 0 for item in new})
        return fences

    def _update_returning(
        self, conn: Connection, where: Sequence[Any], values: Mapping[str, Any], columns: Sequence[Any],
    ) -> list[Any]:
        """UPDATE task_instance ... RETURNING ``columns``; on MySQL, which has no RETURNING, the rows
        are locked by a SELECT ... FOR UPDATE first, updated by id and read back, in the caller's
        transaction, so nobody changes them in between."""
        if not self._mysql:
            return list(conn.execute(update(_ti).where(*where).values(values).returning(*columns)).all())
        ids = list(conn.execute(select(_ti.c.id).where(*where).order_by(_ti.c.id).with_for_update()).scalars())
        if not ids:
            return []
        conn.execute(update(_ti).where(_ti.c.id.in_(ids)).values(values))
        return list(conn.execute(select(*columns).where(_ti.c.id.in_(ids)).order_by(_ti.c.id)).all())

    def _try_number_update(self) -> Executable:
        statement = self._statements.get("claim_try_number")
        if statement is None:
            statement = (update(_ti).where(_ti.c.run_pk == bindparam("b_run_pk"), _ti.c.task_id == bindparam("b_task_id"),
                                           _ti.c.map_index == bindparam("b_map_index"))
                         .values(try_number=bindparam("b_try_number")))
            self._statements["claim_try_number"] = statement
        return statement

    def _claim_statement(self, states: tuple[str, ...], to_state: str, *, fenced: bool) -> Executable:
        """The claim of a batch of task instances, built once per shape and cached.

        On SQLite the caller's ``BEGIN IMMEDIATE`` makes this host the only writer, so the conditional
        UPDATE decides atomically; on PostgreSQL the rows are picked with ``FOR UPDATE SKIP LOCKED`` so
        two hosts claiming at once never wait on each other and each row goes to one of them. MySQL
        cannot update a table it selects from in a subquery, nor return what it updated: there this
        is the locking SELECT alone, and :meth:`_claim_update` updates what it picked.
        """
        key = ("claim", states, to_state, fenced)
        statement = self._statements.get(key)
        if statement is not None:
            return statement
        values: dict[str, Any] = {"state": to_state, "claimed_by": bindparam("b_host"), "updated_at": bindparam("b_now"),
                                  "fence": _NEXT_FENCE}
        if to_state == "queued":
            values["queued_at"] = bindparam("b_now")
        # task_id IN (...) even when the pairs say it again: SQLite uses the (run_pk, task_id) index
        # only for it, and without it scanned every row of the run at each claim (0.37 ms a claim
        # in a run of 1,000 tasks, against 0.06 ms; ten times that at 10,000)
        wanted: tuple[Any, ...] = (_ti.c.run_pk == bindparam("b_run_pk"),
                                   _ti.c.task_id.in_(bindparam("b_ids", expanding=True)))
        if fenced:
            wanted += (tuple_(_ti.c.task_id, _ti.c.map_index, _ti.c.fence).in_(bindparam("b_pairs", expanding=True)),
                       or_(_ti.c.state.in_(states), _ti.c.claimed_by == bindparam("b_host")))
        else:
            wanted += (tuple_(_ti.c.task_id, _ti.c.map_index).in_(bindparam("b_keys", expanding=True)),
                       _ti.c.state.in_(states))
        if self._mysql:
            statement = (select(_ti.c.id, _ti.c.task_id, _ti.c.map_index, _ti.c.fence).where(*wanted)
                         .order_by(_ti.c.id).with_for_update(skip_locked=True))
            self._statements[key] = statement
            return statement
        if self._dialect == "postgresql":
            picked = select(_ti.c.id).where(*wanted).with_for_update(skip_locked=True)
            statement = update(_ti).where(_ti.c.id.in_(picked.scalar_subquery()))
        else:
            statement = update(_ti).where(*wanted)
        statement = statement.values(values).returning(_ti.c.task_id, _ti.c.map_index, _ti.c.fence)
        self._statements[key] = statement
        return statement

    def _claim_update(self, to_state: str) -> Executable:
        """MySQL's second half of a claim: the rows its locking SELECT picked, by id."""
        key = ("claim_update", to_state)
        statement = self._statements.get(key)
        if statement is None:
            values: dict[str, Any] = {"state": to_state, "claimed_by": bindparam("b_host"),
                                      "updated_at": bindparam("b_now"), "fence": _NEXT_FENCE}
            if to_state == "queued":
                values["queued_at"] = bindparam("b_now")
            statement = update(_ti).where(_ti.c.id.in_(bindparam("b_pks", expanding=True))).values(values)
            self._statements[key] = statement
        return statement

    def _try_claim_upsert(self) -> Executable:
        """The try row a claim writes; a reschedule goes on with its try, keeping its first start."""
        statement = self._statements.get("try_claim")
        if statement is None:
            insert = self._insert(_try)
            if self._mysql:
                statement = insert.on_duplicate_key_update(
                    {key: insert.inserted[key] for key in ("state", "hostname", "fence")})
            else:
                statement = insert.on_conflict_do_update(
                    index_elements=list(_TRY_PK),
                    set_={key: insert.excluded[key] for key in ("state", "hostname", "fence")},
                )
            self._statements["try_claim"] = statement
        return statement

    # -- the hot path ---------------------------------------------------------------------------

    def record(
        self,
        run_pk: int,
        *,
        task_changes: Sequence[Mapping[str, Any]] = (),
        tries: Sequence[Mapping[str, Any]] = (),
        outputs: Sequence[Mapping[str, Any]] = (),
        events: Sequence[Mapping[str, Any]] = (),
        run_changes: Mapping[str, Any] | None = None,
        fenced: bool = False,
        xcoms: Sequence[Mapping[str, Any]] = (),
        asset_events: Sequence[Mapping[str, Any]] = (),
    ) -> list[str]:
        """Apply one batch of outcomes of run ``run_pk`` in one transaction.

        ``task_changes`` are dicts with ``task_id`` and the task_instance columns to set;
        ``tries`` are task_try rows, ``outputs`` task_output rows (replacing earlier ones), ``xcoms``
        task_xcom rows (values pushed under a key, fenced like outputs), ``asset_events`` the events
        of a successful task's outlets (dicts with ``uri``, ``source_task_id``, ...; dropped with a
        refused change of that task, so a stale success records none),
        ``events`` event rows, ``run_changes`` dag_run columns to set. Either all of it is stored
        or none: a crash between two parts would leave a task finished without its output.

        The fencing rule: a scheduler host writes with ``fenced``, and then every task change and
        output carries the ``fence`` the host holds for that task instance (from its claim, or the
        one it last read for a task it only plans), and every try row the fence of its try. A row is
        written only while it still has that fence, checked in the UPDATE's own WHERE clause (in the
        upsert's conflict clause for tries), so a write buffered before a newer claim, adoption,
        clear or mark can never land over it. The task ids of refused changes and outputs are
        returned: that host's view of them is stale. Unfenced writes (``dag.test()``, ``mark``) are
        outside any claim: they raise the fence of each row they change, so whoever held it is
        refused from then on.
        """
        now = _now()
        with write_transaction(self._engine, self.url) as conn:
            refused: list[str] = []
            if fenced and (task_changes or outputs or xcoms):
                current = self._fences(conn, run_pk, {item["task_id"] for item in (*task_changes, *outputs, *xcoms)})
                refused = list(dict.fromkeys(
                    item["task_id"] for item in (*task_changes, *outputs, *xcoms)
                    if current.get(item["task_id"]) != _fence_of(item)
                ))
                if refused:
                    stale = set(refused)
                    task_changes = [c for c in task_changes if c["task_id"] not in stale]
                    outputs = [o for o in outputs if o["task_id"] not in stale]
                    xcoms = [x for x in xcoms if x["task_id"] not in stale]
                    asset_events = [a for a in asset_events if a["source_task_id"] not in stale]
                outputs = [{k: v for k, v in o.items() if k != "fence"} for o in outputs]
                xcoms = [{k: v for k, v in x.items() if k != "fence"} for x in xcoms]
            self._write_batch(conn, run_pk, now, task_changes, tries, outputs, events, run_changes, fenced)
            if xcoms:
                rows = _full_rows(_xcom, [_split(x) for x in xcoms], run_pk=run_pk)
                for row in rows:
                    row["created_at"] = row["created_at"] or now
                self._many(conn, self._upsert(_xcom, _XCOM_KEYS, _XCOM_PK), rows)
            if asset_events:
                self._add_asset_events(conn, asset_events, now)
        return refused

    def _write_batch(
        self,
        conn: Connection,
        run_pk: int,
        now: datetime,
        task_changes: Sequence[Mapping[str, Any]],
        tries: Sequence[Mapping[str, Any]],
        outputs: Sequence[Mapping[str, Any]],
        events: Sequence[Mapping[str, Any]],
        run_changes: Mapping[str, Any] | None,
        fenced: bool,
    ) -> None:
        groups: dict[frozenset[str], list[dict[str, Any]]] = {}
        for change in task_changes:
            keys = set(change)
            keys.discard("task_id")
            keys.discard("fence")
            _check_keys(_ti, keys, fixed=("id", "run_pk", "dag_id", "run_id"))
            params = {f"v_{key}": change[key] for key in keys}
            if "updated_at" not in keys:
                keys.add("updated_at")
                params["v_updated_at"] = now
            params["w_run_pk"] = run_pk
            params["w_task_id"], params["w_map_index"] = split_key(change["task_id"])
            if fenced:
                params["w_fence"] = _fence_of(change)
            groups.setdefault(frozenset(keys), []).append(params)
        try_rows = _full_rows(_try, [_split(t) for t in tries], run_pk=run_pk) if tries else ()
        if fenced:
            for row in try_rows:
                if row["fence"] is None:
                    raise TypeError(f"fenced write of a try without its fence: {row!r}")
        output_rows = _full_rows(_output, [_split(o) for o in outputs], run_pk=run_pk) if outputs else ()
        for row in output_rows:
            if row["created_at"] is None:
                row["created_at"] = now
        event_rows = self._event_rows(events, now) if events else ()
        if run_changes:
            _check_keys(_run, run_changes, fixed=("id",))
        for keys, params in groups.items():
            self._many(conn, self._task_update(keys, fenced), params)
        if try_rows:
            self._many(conn, self._try_upsert(fenced), try_rows)
        if output_rows:
            self._many(conn, self._upsert(_output, _OUTPUT_KEYS, _OUTPUT_PK), output_rows)
        if event_rows:
            self._many(conn, self._event_insert, event_rows)
        if run_changes:
            self._many(conn, self._run_update(frozenset(run_changes)), [{**run_changes, "w_run_pk": run_pk}])

    def _fences(self, conn: Connection, run_pk: int, task_ids: set[str]) -> dict[str, int]:
        """The fence each of ``task_ids`` has now. On PostgreSQL the rows stay locked until the
        transaction ends (SQLite's BEGIN IMMEDIATE already excludes every other writer), so the
        caller learns exactly which of its writes the fenced UPDATE will refuse."""
        base_ids = list(dict.fromkeys(split_key(key)[0] for key in task_ids))
        query = select(_ti.c.task_id, _ti.c.map_index, _ti.c.fence).where(_ti.c.run_pk == run_pk,
                                                                           _ti.c.task_id.in_(base_ids))
        if self._dialect != "sqlite":
            query = query.order_by(_ti.c.id).with_for_update()  # one lock order for every host
        return {ti_key(task_id, index): fence for task_id, index, fence in conn.execute(query).all()}

    def _try_upsert(self, fenced: bool) -> Executable:
        """A try's outcome over the row its claim wrote: what the outcome does not know (a try
        taken over from a dead host has no start, host or pid of its own) keeps the claim's value;
        a fenced outcome lands only if the try still has the writer's fence."""
        cache_key = ("try_upsert", fenced)
        statement = self._statements.get(cache_key)
        if statement is None:
            insert = self._insert(_try)
            kept = ("start_date", "hostname", "pid", "log_path")
            if self._mysql:
                statement = insert.on_duplicate_key_update(_mysql_try_update(insert, kept, fenced))
                self._statements[cache_key] = statement
                return statement
            changed = {key: (func.coalesce(insert.excluded[key], _try.c[key]) if key in kept else insert.excluded[key])
                       for key in _TRY_KEYS if key not in _TRY_PK}
            where = or_(_try.c.fence.is_(None), _try.c.fence == insert.excluded.fence) if fenced else None
            statement = insert.on_conflict_do_update(index_elements=list(_TRY_PK), set_=changed, where=where)
            self._statements[cache_key] = statement
        return statement

    def _event_rows(self, events: Iterable[Mapping[str, Any]], now: datetime) -> list[dict[str, Any]]:
        rows = _full_rows(_event, events)
        for row in rows:
            row.pop("id")
            if row["at"] is None:
                row["at"] = now
            if not row["kind"]:
                raise TypeError(f"event without kind: {row!r}")
        return rows

    def get_tries(self, run_pk: int, task_id: str | None = None, map_index: int | None = None) -> list[dict[str, Any]]:
        """Tries by task, map index and number; ``map_index`` None gives every instance's."""
        query = select(_try).where(_try.c.run_pk == run_pk).order_by(_try.c.task_id, _try.c.map_index, _try.c.try_number)
        if task_id is not None:
            query = query.where(_try.c.task_id == task_id)
        if map_index is not None:
            query = query.where(_try.c.map_index == map_index)
        with read_connection(self._engine, self.url) as conn:
            return _keyed(_rows(conn.execute(query)))

    def get_outputs(self, run_pk: int) -> dict[str, dict[str, Any]]:
        """The run's outputs by engine name (``task_id``, or ``task_id[3]`` for a mapped instance)."""
        with read_connection(self._engine, self.url) as conn:
            rows = _rows(conn.execute(select(_output).where(_output.c.run_pk == run_pk)))
        return {ti_key(row["task_id"], row["map_index"]): row for row in rows}

    def get_output(self, run_pk: int, task_id: str, map_index: int = UNMAPPED) -> dict[str, Any] | None:
        """One task's output row: what a view following one task asks for, at every poll."""
        with read_connection(self._engine, self.url) as conn:
            row = conn.execute(
                select(_output).where(_output.c.run_pk == run_pk, _output.c.task_id == task_id,
                                      _output.c.map_index == map_index)
            ).mappings().first()
        return None if row is None else dict(row)

    def get_xcoms(self, run_pk: int, task_id: str | None = None) -> list[dict[str, Any]]:
        """The values tasks of a run pushed under keys of their own, by task and key."""
        query = select(_xcom).where(_xcom.c.run_pk == run_pk).order_by(_xcom.c.task_id, _xcom.c.map_index, _xcom.c.key)
        if task_id is not None:
            query = query.where(_xcom.c.task_id == task_id)
        with read_connection(self._engine, self.url) as conn:
            return _keyed(_rows(conn.execute(query)))

    # -- import errors ------------------------------------------------------------------------------

    def record_import_error(self, fileloc: str, summary: str, traceback: str) -> None:
        """Keep only the latest failure of a file: an older traceback is stale once it changed."""
        values = {"fileloc": str(fileloc), "summary": summary, "traceback": traceback, "created_at": _now()}
        with write_transaction(self._engine, self.url) as conn:
            conn.execute(self._upsert(_import_error, sorted(values), ("fileloc",)), values)

    def clear_import_errors(self, fileloc: str | None = None) -> None:
        query = delete(_import_error)
        if fileloc is not None:
            query = query.where(_import_error.c.fileloc == str(fileloc))
        with write_transaction(self._engine, self.url) as conn:
            conn.execute(query)

    def list_import_errors(self) -> list[dict[str, Any]]:
        with read_connection(self._engine, self.url) as conn:
            return _rows(conn.execute(select(_import_error).order_by(_import_error.c.fileloc)))

    # -- events ---------------------------------------------------------------------------------

    def add_events(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Append events (dicts with ``kind`` and any of ``at``, ``dag_id``, ``run_id``, ``task_id``, ``detail``)."""
        if not events:
            return
        rows = self._event_rows(events, _now())
        with write_transaction(self._engine, self.url) as conn:
            self._many(conn, self._event_insert, rows)

    def list_events(self, dag_id: str | None = None, *, limit: int | None = 100) -> list[dict[str, Any]]:
        query = select(_event).order_by(_event.c.id.desc())
        if dag_id is not None:
            query = query.where(_event.c.dag_id == dag_id)
        if limit is not None:
            query = query.limit(limit)
        with read_connection(self._engine, self.url) as conn:
            return _rows(conn.execute(query))

    def last_event_id(self) -> int:
        """The id of the newest event (0 when there is none): where a reader that wants only what
        happens from now on starts."""
        with read_connection(self._engine, self.url) as conn:
            return int(conn.execute(select(func.max(_event.c.id))).scalar() or 0)

    def events_after(
        self, after: int, *, through: int | None = None, kinds: Iterable[str] | None = None, limit: int = 200
    ) -> list[dict[str, Any]]:
        """Events with ``after < id <= through`` (oldest first), of ``kinds`` if given: what a
        poller has not seen yet. Ids only grow, so the last id read is the next ``after``."""
        query = select(_event).where(_event.c.id > int(after)).order_by(_event.c.id).limit(int(limit))
        if through is not None:
            query = query.where(_event.c.id <= int(through))
        if kinds is not None:
            query = query.where(_event.c.kind.in_([str(kind) for kind in kinds]))
        with read_connection(self._engine, self.url) as conn:
            return _rows(conn.execute(query))

    # -- scheduler hosts ------------------------------------------------------------------------

    def register_host(self, host_id: str, *, hostname: str, pid: int, kind: str, detail: dict[str, Any] | None = None) -> None:
        now = _now()
        with write_transaction(self._engine, self.url) as conn:
            conn.execute(self._upsert(_host, tuple(c.name for c in _host.columns), ("host_id",)), {
                "host_id": host_id, "hostname": hostname, "pid": pid, "kind": kind, "state": "running",
                "started_at": now, "heartbeat_at": now, "stopped_at": None, "detail": detail or {},
            })

    def heartbeat(self, host_id: str, detail: dict[str, Any] | None = None, now: datetime | None = None) -> None:
        """Mark the host alive, and with it every task instance it holds."""
        now = now or _now()
        values: dict[str, Any] = {"heartbeat_at": now}
        if detail is not None:
            values["detail"] = detail
        with write_transaction(self._engine, self.url) as conn:
            conn.execute(update(_host).where(_host.c.host_id == host_id).values(values))
            # A host taken for dead that still beats is alive: were it left "dead", every task it
            # claims from now on would be adopted (and failed) by the others at their next beat.
            conn.execute(update(_host).where(_host.c.host_id == host_id, _host.c.state == "dead")
                         .values(state="running", stopped_at=None))
            conn.execute(
                update(_ti).where(_ti.c.claimed_by == host_id, _ti.c.state.in_(HELD_STATES)).values(heartbeat_at=now)
            )

    def stop_host(self, host_id: str) -> None:
        now = _now()
        with write_transaction(self._engine, self.url) as conn:
            conn.execute(update(_host).where(_host.c.host_id == host_id).values(state="stopped", stopped_at=now, heartbeat_at=now))

    def list_hosts(self, state: str | None = None) -> list[dict[str, Any]]:
        query = select(_host).order_by(_host.c.started_at.desc())
        if state is not None:
            query = query.where(_host.c.state == state)
        with read_connection(self._engine, self.url) as conn:
            return _rows(conn.execute(query))

    def mark_hosts_dead(self, host_ids: Sequence[str]) -> None:
        if host_ids:
            with write_transaction(self._engine, self.url) as conn:
                conn.execute(update(_host).where(_host.c.host_id.in_(list(host_ids))).values(state="dead", stopped_at=_now()))

    def held_by(self, host_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Task instances that these hosts hold (queued or running), with their run pk."""
        if not host_ids:
            return []
        with read_connection(self._engine, self.url) as conn:
            return _keyed(_rows(conn.execute(
                select(_ti).where(_ti.c.claimed_by.in_(list(host_ids)), _ti.c.state.in_(HELD_STATES))
            )))

    def adopt(self, run_pk: int, task_ids: Sequence[str], from_host: str, to_host: str) -> dict[str, tuple[int, int]]:
        """Take over task instances a dead host held; returns ``{task_id: (fence, try_number)}`` for
        those this call took (atomic: of two hosts adopting at once, each task instance goes to one).

        An adoption is a claim: it raises each row's fence and gives the try in progress the new
        fence too, so the adopter records how that try ended and the dead host, should it come back,
        writes neither the task instance nor its try.
        """
        if not task_ids:
            return {}
        keys = [split_key(key) for key in task_ids]
        with write_transaction(self._engine, self.url) as conn:
            taken = {
                ti_key(task_id, index): (fence, try_number)
                for task_id, index, fence, try_number in self._update_returning(
                    conn,
                    (_ti.c.run_pk == run_pk, _ti.c.task_id.in_(list({t for t, _ in keys})),
                     tuple_(_ti.c.task_id, _ti.c.map_index).in_(keys), _ti.c.claimed_by == from_host,
                     _ti.c.state.in_(HELD_STATES)),
                    dict(claimed_by=to_host, updated_at=_now(), fence=_NEXT_FENCE),
                    (_ti.c.task_id, _ti.c.map_index, _ti.c.fence, _ti.c.try_number),
                )
            }
            if taken:
                conn.execute(
                    update(_try)
                    .where(_try.c.run_pk == run_pk, _try.c.task_id == bindparam("w_task_id"),
                           _try.c.map_index == bindparam("w_map_index"), _try.c.try_number == bindparam("w_try"))
                    .values(fence=bindparam("w_fence")),
                    [{"w_task_id": split_key(k)[0], "w_map_index": split_key(k)[1], "w_try": n, "w_fence": f}
                     for k, (f, n) in taken.items()],
                )
            return taken

    # -- pools ----------------------------------------------------------------------------------

    def set_pool(self, name: str, slots: int, description: str | None = None) -> None:
        with write_transaction(self._engine, self.url) as conn:
            conn.execute(self._upsert(_pool, ("name", "slots", "description"), ("name",)),
                         {"name": name, "slots": int(slots), "description": description})

    def delete_pool(self, name: str) -> None:
        with write_transaction(self._engine, self.url) as conn:
            conn.execute(delete(_pool).where(_pool.c.name == name))

    def list_pools(self) -> list[dict[str, Any]]:
        """Each pool with its slots and how many task instances occupy them now."""
        with read_connection(self._engine, self.url) as conn:
            pools = _rows(conn.execute(select(_pool).order_by(_pool.c.name)))
            used = dict(conn.execute(
                select(_ti.c.pool, func.count()).where(_ti.c.state.in_(HELD_STATES)).group_by(_ti.c.pool)
            ).all())
        for row in pools:
            row["occupied"] = int(used.get(row["name"], 0))
        return pools

    def previous_run_task_states(
        self, dag_id: str, logical_date: datetime, task_ids: Iterable[str], run_types: Sequence[str],
    ) -> tuple[dict[str, Any] | None, dict[str, str]]:
        """The DAG's run of ``run_types`` with the latest logical date before ``logical_date`` (what
        ``depends_on_past`` looks back at, as Airflow does), and the states of its task instances
        ``task_ids``; ``(None, {})`` when there is no earlier run."""
        with read_connection(self._engine, self.url) as conn:
            run = conn.execute(
                select(_run.c.id, _run.c.run_id, _run.c.logical_date, _run.c.state)
                .where(_run.c.dag_id == dag_id, _run.c.logical_date < logical_date,
                       _run.c.run_type.in_(list(run_types)))
                .order_by(_run.c.logical_date.desc(), _run.c.id.desc()).limit(1)
            ).mappings().first()
            if run is None:
                return None, {}
            states = conn.execute(
                select(_ti.c.task_id, _ti.c.state).where(_ti.c.run_pk == run["id"], _ti.c.task_id.in_(list(task_ids)),
                                                         _ti.c.map_index == UNMAPPED)
            ).all()
        return dict(run), {task_id: state for task_id, state in states}

    def last_logical_date(self, dag_id: str, run_types: Sequence[str] = ("scheduled",)) -> datetime | None:
        with read_connection(self._engine, self.url) as conn:
            return conn.execute(
                select(func.max(_run.c.logical_date)).where(_run.c.dag_id == dag_id, _run.c.run_type.in_(list(run_types)))
            ).scalar()

    def run_counts(self) -> dict[str, dict[str, int]]:
        """How many runs each DAG has in each state, in one query (``{dag_id: {state: n}}``)."""
        with read_connection(self._engine, self.url) as conn:
            rows = conn.execute(
                select(_run.c.dag_id, _run.c.state, func.count()).group_by(_run.c.dag_id, _run.c.state)
            ).all()
        counts: dict[str, dict[str, int]] = {}
        for dag_id, state, n in rows:
            counts.setdefault(dag_id, {})[state] = int(n)
        return counts

    def count_active_runs(self) -> dict[str, int]:
        """Runs queued or running, per DAG."""
        with read_connection(self._engine, self.url) as conn:
            return dict(conn.execute(
                select(_run.c.dag_id, func.count()).where(_run.c.state.in_(("queued", "running"))).group_by(_run.c.dag_id)
            ).all())

    def clear_task_instances(self, run_pk: int, retries: Mapping[str, int], *, reopen: Sequence[str] = ()) -> list[str]:
        """Make task instances run again: back to ``none`` with ``retries[task_id]`` fresh retries,
        and their run back to ``queued``. Past tries stay in the history; the next try gets the next
        number, so ``max_tries`` becomes the try number reached plus the new allowance.

        ``reopen`` names mapped tasks some of whose instances are cleared (``add[2]``): their own
        row goes back to ``running``, as the task is not done until those instances are."""
        if not retries:
            return []
        statement = (
            update(_ti)
            .where(_ti.c.run_pk == run_pk, _ti.c.task_id == bindparam("w_task_id"), _ti.c.map_index == bindparam("w_map_index"))
            .values(state="none", claimed_by=None, next_retry_at=None, end_date=None, duration=None, error=None,
                    updated_at=bindparam("w_now"), max_tries=_ti.c.try_number + bindparam("w_allowance"),
                    fence=_NEXT_FENCE)  # whoever planned or held these before is refused now
        )
        now = _now()
        keys = [split_key(key) for key in retries]
        params = [{"w_task_id": t, "w_map_index": i, "w_now": now, "w_allowance": int(n) + 1}
                  for (t, i), n in zip(keys, retries.values())]
        with write_transaction(self._engine, self.url) as conn:
            conn.execute(statement, params)
            if reopen:
                conn.execute(update(_ti).where(_ti.c.run_pk == run_pk, _ti.c.task_id.in_(list(reopen)),
                                               _ti.c.map_index == UNMAPPED)
                             .values(state="running", end_date=None, updated_at=now, fence=_NEXT_FENCE))
            for table in (_output, _xcom):
                conn.execute(delete(table).where(table.c.run_pk == run_pk, table.c.task_id.in_(list({t for t, _ in keys})),
                                                 tuple_(table.c.task_id, table.c.map_index).in_(keys)))
            conn.execute(update(_run).where(_run.c.id == run_pk).values(state="queued", end_date=None))
        return list(retries)

    def claim_run(self, run_pk: int, from_states: Sequence[str] = ("queued",), to_state: str = "running", **values: Any) -> bool:
        """Move a run from one of ``from_states`` to ``to_state``; True if this call did."""
        with write_transaction(self._engine, self.url) as conn:
            result = conn.execute(
                update(_run).where(_run.c.id == run_pk, _run.c.state.in_(list(from_states))).values(state=to_state, **values)
            )
            return result.rowcount == 1

    def claim_deadline_notice(self, run_pk: int, now: datetime) -> bool:
        """Mark that the notice of run ``run_pk``'s missed deadline goes out now; True for the one
        call (on any host) that marked it, which then sends it. A finished run is not marked."""
        with write_transaction(self._engine, self.url) as conn:
            result = conn.execute(
                update(_run).where(_run.c.id == run_pk, _run.c.deadline_notified_at.is_(None),
                                   _run.c.state.in_(["queued", "running"])).values(deadline_notified_at=now)
            )
            return result.rowcount == 1


_TRY_PK = ("run_pk", "task_id", "map_index", "try_number")
_TRY_KEYS = tuple(sorted(_COLUMNS["task_try"]))
_OUTPUT_PK = ("run_pk", "task_id", "map_index")
_OUTPUT_KEYS = tuple(sorted(_COLUMNS["task_output"]))
_XCOM_PK = ("run_pk", "task_id", "map_index", "key")
_XCOM_KEYS = tuple(sorted(_COLUMNS["task_xcom"]))


def _mysql_try_update(insert: Any, kept: Sequence[str], fenced: bool) -> list[tuple[Any, Any]]:
    """The assignments of a try's upsert on MySQL, which has no WHERE in ON DUPLICATE KEY UPDATE:
    with ``fenced`` each column takes the new value only where the fence allows it, else keeps its
    own. The fence is assigned last: MySQL applies assignments in order, and the others read it."""
    allowed = or_(_try.c.fence.is_(None), _try.c.fence == insert.inserted.fence)
    assignments = []
    for key in (*(k for k in _TRY_KEYS if k not in _TRY_PK and k != "fence"), "fence"):
        new = func.coalesce(insert.inserted[key], _try.c[key]) if key in kept else insert.inserted[key]
        assignments.append((key, case((allowed, new), else_=_try.c[key]) if fenced else new))
    return assignments


def _split(item: Mapping[str, Any]) -> dict[str, Any]:
    """A row the engine names by its key (``task_id[3]``), with its task id and map index apart."""
    row = dict(item)
    row["task_id"], row["map_index"] = split_key(row["task_id"])
    return row


def _keyed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with their engine name beside their task id and map index."""
    for row in rows:
        row["ti_key"] = ti_key(row["task_id"], row["map_index"])
    return rows


def _fence_of(item: Mapping[str, Any]) -> int:
    try:
        return int(item["fence"])
    except KeyError:
        raise TypeError(f"fenced write without the writer's fence: {dict(item)!r}") from None


def open_store(settings: Settings | None = None, *, create: bool = True) -> Store:
    """The store of ``settings`` (default: the current ones); see :meth:`Store.open`."""
    return Store.open(settings, create=create)
