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


def test_upgrade_from_0002_keeps_outputs_without_previews(store_url: str, tmp_path: Any) -> None:
    """Migration 0003 adds the preview columns; outputs stored before it keep their data, and are
    shown with a line saying no preview is stored, without their pickle being read."""
    import pickle
    from datetime import UTC, datetime

    from alembic import command
    from sqlalchemy import text

    from nbflow.outputs import load_value, stored_preview
    from nbflow.store.migrate import alembic_config, upgrade_db

    command.upgrade(alembic_config(store_url), "0002")
    artifact = tmp_path / "output.pickle"
    artifact.write_bytes(pickle.dumps((1, "two")))
    engine = create_engine(store_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO dag (dag_id, is_paused) VALUES ('old', :f)"), {"f": False})
            conn.execute(text("INSERT INTO dag_run (dag_id, run_id, run_type, state) "
                              "VALUES ('old', 'r1', 'manual', 'success')"))
            run_pk = conn.execute(text("SELECT id FROM dag_run")).scalar_one()
            conn.execute(text("INSERT INTO task_output (run_pk, task_id, value_json, artifact_path, size, created_at) "
                              "VALUES (:pk, 'inline', '{\"a\": 1}', NULL, 8, :at), "
                              "(:pk, 'pickled', NULL, :path, :size, :at)"),
                         {"pk": run_pk, "path": str(artifact), "size": artifact.stat().st_size,
                          "at": datetime(2024, 6, 1, tzinfo=UTC)})
    finally:
        engine.dispose()

    upgrade_db(store_url)
    check_db(store_url)
    with Store(store_url) as store:
        rows = store.get_outputs(run_pk)
    assert rows["pickled"]["artifact_path"] == str(artifact) and rows["inline"]["value_json"] == '{"a": 1}'
    assert all(rows[t]["kind"] is None and rows[t]["preview"] is None for t in rows)

    artifact.unlink()  # the preview must not need the file: it is never opened
    old = stored_preview(rows["pickled"])
    assert not old.stored and old.kind == "pickle" and old.size == rows["pickled"]["size"]
    assert old.line().startswith("(no preview stored: a pickle output")
    inline = stored_preview(rows["inline"])  # inline JSON runs no code: a preview is made from it
    assert inline.stored and inline.line() == "{'a': 1}" and inline.type_name == "dict"
    assert load_value(rows["inline"]) == (True, {"a": 1}) and load_value(rows["pickled"]) == (False, None)

    command.downgrade(alembic_config(store_url), "0002")
    engine = create_engine(store_url)
    try:
        columns = {c["name"] for c in inspect(engine).get_columns("task_output")}
    finally:
        engine.dispose()
    assert columns.isdisjoint({"kind", "type_name", "preview"}) and {"value_json", "artifact_path"} <= columns
