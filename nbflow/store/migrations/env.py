"""Alembic environment for the nbflow store, driven from :mod:`nbflow.store.migrate`.

The caller hands over an open connection in ``config.attributes["connection"]`` so migrations run
with the same engine setup (SQLite pragmas, error translation) as the store itself.
"""

from __future__ import annotations

from alembic import context

from nbflow.store.engine import make_engine
from nbflow.store.schema import metadata


def _run(connection: object) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,  # SQLite can only alter a table by copying it
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.begin() as owned:
            _run(owned)
    finally:
        engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
