"""The migrations at head and ``nbflow.store.schema`` describe the same database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, inspect

from nbflow.store.migrate import HEAD_REVISION, check_db, init_db
from nbflow.store.schema import VERSION_TABLE, metadata
from nbflow.store.store import Store


def snapshot(engine: Engine) -> dict[str, Any]:
    """Everything inspection reports about the tables, in a comparable form."""
    inspector = inspect(engine)
    tables: dict[str, Any] = {}
    for name in sorted(inspector.get_table_names()):
        tables[name] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], str(c.get("default")), bool(c.get("autoincrement")))
                for c in inspector.get_columns(name)
            ],
            "pk": (inspector.get_pk_constraint(name)["constrained_columns"]),
            "fks": sorted(
                (fk["name"], tuple(fk["constrained_columns"]), fk["referred_table"],
                 tuple(fk["referred_columns"]), (fk.get("options") or {}).get("ondelete"))
                for fk in inspector.get_foreign_keys(name)
            ),
            "unique": sorted((u["name"], tuple(u["column_names"])) for u in inspector.get_unique_constraints(name)),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(name)
            ),
        }
    return tables


def drop_everything(engine: Engine) -> None:
    existing = MetaData()
    existing.reflect(engine)
    existing.drop_all(engine)


def test_migrations_at_head_match_schema(store_url: str) -> None:
    init_db(store_url)
    check_db(store_url)
    engine = create_engine(store_url)
    try:
        migrated = snapshot(engine)
        assert set(migrated) == set(metadata.tables) | {VERSION_TABLE}

        drop_everything(engine)
        metadata.create_all(engine)
        from_schema = snapshot(engine)
        assert migrated.keys() - {VERSION_TABLE} == from_schema.keys()
        for table in from_schema:
            assert migrated[table] == from_schema[table], table

        drop_everything(engine)
        from nbflow.store.migrate import create_at_head
        with engine.begin() as conn:
            create_at_head(conn)
        assert snapshot(engine) == migrated  # the fast path of Store.open is the same schema
    finally:
        engine.dispose()
    with Store(store_url) as store:
        assert store.schema_version() == HEAD_REVISION


def test_no_pending_autogenerate_changes(store_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    init_db(store_url)
    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()
