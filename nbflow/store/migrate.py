"""Create, upgrade, check and reset the store's schema.

Alembic is imported inside the functions that need it: importing it costs about 300 ms, which the
scheduler's and the notebook's start-up must not pay just to read one version string.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, MetaData, inspect, text

from nbflow.errors import SchemaVersionError, StoreUnavailableError
from nbflow.store.coltypes import MYSQL_DIALECTS
from nbflow.store.engine import MYSQL_SCHEMA_LOCK, make_engine, read_connection, safe_url, write_transaction
from nbflow.store.schema import VERSION_TABLE, metadata

if TYPE_CHECKING:
    from alembic.config import Config

#: The revision this nbflow's code expects; equal to the newest file in ``migrations/versions``.
HEAD_REVISION = "0011"

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

# Any constant works; it only has to be the same for every nbflow process creating a schema.
_PG_LOCK_KEY = 0x6E62666C6F77


def read_version(connection: Connection) -> str | None:
    """The revision stamped in the database, or None when it has no nbflow schema."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    row = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).first()
    return None if row is None else str(row[0])


def serialize_schema_changes(connection: Connection) -> None:
    """Make concurrent schema creation on PostgreSQL and MySQL wait its turn (SQLite's BEGIN
    IMMEDIATE does). MySQL's named lock belongs to the session, not the transaction (its DDL commits
    as it goes): the engine releases it when the connection goes back to the pool."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    elif connection.dialect.name in MYSQL_DIALECTS:
        got = connection.execute(text("SELECT GET_LOCK(:name, 600)"), {"name": MYSQL_SCHEMA_LOCK}).scalar()
        if got != 1:
            raise StoreUnavailableError(safe_url(str(connection.engine.url)),
                                        "waited 10 minutes for another nbflow process changing the schema")
        connection.info[MYSQL_SCHEMA_LOCK] = True


def create_at_head(connection: Connection) -> None:
    """Create the tables straight from the schema and stamp them at head, without Alembic.

    Only for an empty database: this is what the migrations would produce (a test keeps it so),
    in a fraction of the time.
    """
    metadata.create_all(connection)
    connection.execute(
        text(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} ("
             "version_num VARCHAR(32) NOT NULL, "
             f"CONSTRAINT {VERSION_TABLE}_pkc PRIMARY KEY (version_num))")
    )
    connection.execute(text(f"DELETE FROM {VERSION_TABLE}"))
    connection.execute(text(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES (:v)"), {"v": HEAD_REVISION})


def _config(url: str, connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would read a '%' of an encoded password as a directive.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_config("sqlite://"))
    return {revision.revision for revision in script.walk_revisions()}


@contextmanager
def _schema_transaction(url: str, busy_timeout: float) -> Iterator[Connection]:
    engine = make_engine(url, busy_timeout=busy_timeout)
    try:
        with write_transaction(engine, url) as connection:
            serialize_schema_changes(connection)
            yield connection
    finally:
        engine.dispose()


def _upgrade(url: str, connection: Connection) -> None:
    from alembic import command

    found = read_version(connection)
    if found is not None and found not in _known_revisions():
        raise SchemaVersionError(safe_url(url), found, HEAD_REVISION)
    command.upgrade(_config(url, connection), "head")


def upgrade_db(url: str, *, busy_timeout: float = 30.0) -> None:
    """Migrate the database to this nbflow's schema; a database already at head is left alone."""
    with _schema_transaction(url, busy_timeout) as connection:
        _upgrade(url, connection)


def init_db(url: str, *, busy_timeout: float = 30.0) -> None:
    """Create the schema in an empty database (or bring an existing one to head)."""
    upgrade_db(url, busy_timeout=busy_timeout)


def check_db(url: str, *, busy_timeout: float = 30.0) -> None:
    """Raise :class:`SchemaVersionError`, saying which command fixes it, unless the schema is at head."""
    engine = make_engine(url, busy_timeout=busy_timeout)
    try:
        with read_connection(engine, url) as connection:
            found = read_version(connection)
    finally:
        engine.dispose()
    if found != HEAD_REVISION:
        raise SchemaVersionError(safe_url(url), found, HEAD_REVISION)


def reset_db(url: str, *, busy_timeout: float = 30.0) -> None:
    """Drop every table in the database (nbflow's and any other) and create the schema afresh."""
    with _schema_transaction(url, busy_timeout) as connection:
        existing = MetaData()
        existing.reflect(connection)
        existing.drop_all(connection)
        _upgrade(url, connection)


def alembic_config(url: str) -> Any:
    """An Alembic ``Config`` for this package's migrations, for tools that drive Alembic themselves."""
    return _config(url)
