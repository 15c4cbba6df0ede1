"""MySQL/MariaDB errors at the store's boundary: which are outages to wait out, which are bugs.

Against the real MariaDB server of ``mysql_url``: the server ends connections, a port nobody listens
on, a duplicate key.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import NullPool

from nbflow.errors import StoreInterruptedError, StoreUnavailableError, TransientStoreError
from nbflow.store import Store
from nbflow.store.engine import write_transaction
from nbflow.store.migrate import init_db


def _kill(url: str, connection_id: int) -> None:
    killer = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with killer.connect() as conn:
            conn.execute(text(f"KILL CONNECTION {int(connection_id)}"))
    finally:
        killer.dispose()


def test_mysql_connection_losses_are_transient_and_bugs_are_not(mysql_url: str) -> None:
    init_db(mysql_url)
    with Store(mysql_url) as store:
        store.upsert_dag("d")
        # the server ends a pooled connection between two calls: the pool's check replaces it
        with store._engine.connect() as conn:
            pooled = conn.execute(text("SELECT CONNECTION_ID()")).scalar_one()
        _kill(mysql_url, pooled)
        store.upsert_dag("d", is_paused=True)
        assert store.get_dag("d")["is_paused"] is True

        with pytest.raises(IntegrityError):  # a bug, not an outage: not translated
            store.create_run(dag_id="d", run_id="r", run_type="manual", logical_date=None,
                             data_interval_start=None, data_interval_end=None, conf={}, state="queued",
                             task_rows=[{"task_id": "t"}, {"task_id": "t"}])
        assert store.get_run("d", "r") is None  # one transaction: no half-written run

        # the connection ends in the middle of a write transaction ("Lost connection", 2013)
        with pytest.raises(StoreInterruptedError) as info:
            with write_transaction(store._engine, store.url) as conn:
                conn.execute(text("UPDATE dag SET is_paused = false WHERE dag_id = 'd'"))
                _kill(mysql_url, conn.execute(text("SELECT CONNECTION_ID()")).scalar_one())
                conn.execute(text("SELECT 1"))
        assert isinstance(info.value, TransientStoreError)
        assert store.get_dag("d")["is_paused"] is True

    # nobody listens on port 1 ("Can't connect", 2003)
    with Store("mysql+pymysql://root@127.0.0.1:1/nbflow") as nowhere, pytest.raises(StoreUnavailableError) as unreachable:
        nowhere.list_dags()
    assert isinstance(unreachable.value, TransientStoreError)


@pytest.mark.parametrize("made_by", ["migrations", "tables"])
def test_mysql_keeps_microseconds_and_tells_ids_apart_by_case(mysql_url: str, made_by: str) -> None:
    from datetime import UTC, datetime

    if made_by == "migrations":
        init_db(mysql_url)
    with Store(mysql_url) as store:
        if made_by == "tables":
            store._create_if_empty()  # what Store.open does with an empty database
        at = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
        store.upsert_dag("report", next_run_at=at)
        store.upsert_dag("Report")
        assert store.get_dag("report")["next_run_at"] == at
        assert [dag["dag_id"] for dag in store.list_dags()] == ["Report", "report"]
        with pytest.raises(ValueError, match="naive datetime"):
            store.upsert_dag("report", next_run_at=datetime(2024, 5, 1))
