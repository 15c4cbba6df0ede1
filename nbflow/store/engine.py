"""Engines for the store, and the one place where database errors become nbflow errors.

SQLite is tuned for one writer and many readers across threads and processes: WAL so readers never
block the writer, ``synchronous=NORMAL`` because WAL keeps that crash-safe while saving an fsync per
commit, and writes that start with ``BEGIN IMMEDIATE`` so a writer waits for the lock (up to the
busy timeout) at the start instead of failing half-way through a read-then-write transaction.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.expression import Executable

from nbflow.errors import ConfigError, DatabaseLockedError, StoreInterruptedError, StoreUnavailableError

#: The MySQL named lock that serializes schema changes (see nbflow.store.migrate); also the key, in
#: a connection's info, saying that the connection holds it.
MYSQL_SCHEMA_LOCK = "nbflow_schema"
#: Execution option naming the statement that opens a SQLite transaction.
BEGIN_OPTION = "nbflow_sqlite_begin"

_LOCKED_MESSAGES = ("database is locked", "database table is locked", "database is busy")
#: PostgreSQL error codes of failures that pass: the server shutting down, crashed or starting up
#: (57P01-57P03), and transactions it aborted to settle a conflict (serialization failure, deadlock).
#: Class 08 (connection exceptions) is matched by its prefix.
_TRANSIENT_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "40001", "40P01"})
#: MySQL/MariaDB error numbers of the same (PyMySQL gives no SQLSTATE): the server shutting down
#: (1053) or killing the connection (1927, 4031), a deadlock or lock wait it broke off (1213, 1205),
#: and the client's "can't connect" (2003), "server has gone away" (2006) and "lost connection"
#: (2013, 2055).
_TRANSIENT_MYSQL_ERRORS = frozenset({1053, 1205, 1213, 1927, 4031, 2003, 2006, 2013, 2055})
#: what drivers say when a connection breaks without an error code (psycopg's client-side errors)
_BROKEN_CONNECTION_MESSAGES = (
    "server closed the connection", "connection refused", "connection reset", "connection is closed",
    "connection timed out", "terminating connection", "the database system is starting up",
    "the database system is shutting down", "could not receive data", "could not send data",
    "consuming input failed", "broken pipe", "no connection to the server", "ssl connection has been closed",
    "server conn crashed", "connection to server",
)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def safe_url(url: str) -> str:
    """The URL as it may appear in messages and logs: without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa_exc.ArgumentError:  # not a URL at all: hide what looks like a password anyway
        return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", str(url))


def make_engine(url: str, *, busy_timeout: float = 30.0) -> Engine:
    """An engine for ``url``; SQLite files get their parent folder and pragmas.

    A URL that cannot be used (not a URL, an unknown database kind, a driver that is not installed)
    raises :class:`ConfigError` for the setting ``database_url``: it is the user's setting to fix.
    """
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError as exc:
        raise ConfigError("database_url", safe_url(url), f"it is not a database URL ({exc}); write one such as "
                          "sqlite:////path/to/nbflow.db or postgresql+psycopg://user@host/dbname") from exc
    try:
        engine = _make_engine(parsed, busy_timeout)
    except sa_exc.NoSuchModuleError as exc:
        raise ConfigError("database_url", safe_url(url), f"SQLAlchemy knows no database kind '{parsed.drivername}'; "
                          "use a sqlite:///, postgresql+psycopg:// or mysql+pymysql:// URL") from exc
    except ImportError as exc:
        raise ConfigError("database_url", safe_url(url), f"the driver for '{parsed.drivername}' is not installed "
                          f"({exc}); install it (for PostgreSQL: pip install nbflow[postgres]; "
                          "for MySQL/MariaDB: pip install nbflow[mysql])") from exc
    except OSError as exc:  # the SQLite file's folder cannot be made
        raise StoreUnavailableError(safe_url(url), f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from exc
    _quiet_broken_resets(engine)
    return engine


class _BrokenConnectionReset(logging.Filter):
    """SQLAlchemy logs an error with a traceback when it cannot roll back a connection it takes
    back because the database server went away. The store reports such an outage itself, in one line
    ("store unreachable", then "reachable again"), so that record is lowered to DEBUG without its
    traceback; every other record of the pool passes as it is."""

    def __init__(self, broken: tuple[type[BaseException], ...]) -> None:
        super().__init__()
        self.broken = broken

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, self.broken) and record.getMessage().startswith("Exception during reset"):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            record.exc_info, record.exc_text = None, None
            record.msg, record.args = f"{record.getMessage()}: {type(error).__name__}: {error}", ()
        return True


_quieted: set[tuple[str, str]] = set()


def _quiet_broken_resets(engine: Engine) -> None:
    """Install :class:`_BrokenConnectionReset` on the logger of ``engine``'s pool, once per pool
    kind and driver."""
    logger = getattr(engine.pool, "logger", None)
    dbapi = engine.dialect.loaded_dbapi
    if not isinstance(logger, logging.Logger) or (logger.name, dbapi.__name__) in _quieted:
        return
    _quieted.add((logger.name, dbapi.__name__))
    logger.addFilter(_BrokenConnectionReset((dbapi.OperationalError, dbapi.InterfaceError, OSError)))


def _make_engine(parsed: Any, busy_timeout: float) -> Engine:
    if parsed.get_backend_name() in ("mysql", "mariadb"):
        # READ COMMITTED as on PostgreSQL: a claim's locking read sees the rows other hosts
        # committed, and InnoDB takes no gap locks that would make two claims wait on each other.
        # utf8mb4 so any text a task writes fits (the server's default may be a 3-byte utf8).
        query = {"charset": "utf8mb4", **parsed.query}
        engine = create_engine(parsed.set(query=query), pool_pre_ping=True, pool_recycle=3600,
                               isolation_level="READ COMMITTED")
        event.listen(engine, "checkin", _release_schema_lock)
        return engine
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    database = parsed.database or ""
    if not database or database == ":memory:":
        # An in-memory database exists once per connection: every thread must share that one.
        engine = create_engine(
            parsed, connect_args={"check_same_thread": False, "timeout": busy_timeout}, poolclass=StaticPool
        )
        _install_sqlite_hooks(engine, busy_timeout)
        return engine
    if not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        parsed,
        connect_args={"check_same_thread": False, "timeout": busy_timeout},
        # One connection per thread, reused: checking out a pooled connection is the cheapest
        # thing SQLAlchemy offers, and SQLite connections are cheap to keep open.
        pool_size=8,
        max_overflow=32,
        pool_timeout=busy_timeout,
    )
    _install_sqlite_hooks(engine, busy_timeout)
    return engine


def _release_schema_lock(dbapi_connection: Any, record: Any) -> None:
    """A connection back in the pool gives up the schema lock it took (a session lock on MySQL)."""
    if record is not None and record.info.pop(MYSQL_SCHEMA_LOCK, False):
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("DO RELEASE_LOCK(%s)", (MYSQL_SCHEMA_LOCK,))
        finally:
            cursor.close()


def _install_sqlite_hooks(engine: Engine, busy_timeout: float) -> None:
    millis = max(0, int(busy_timeout * 1000))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own implicit BEGIN would defeat BEGIN IMMEDIATE; transactions are
        # opened explicitly in _on_begin instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {millis}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    dbapi_error = engine.dialect.loaded_dbapi.Error

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Straight on the driver: this runs before every transaction, so it is on the hot path.
        statement = connection.get_execution_options().get(BEGIN_OPTION, "BEGIN")
        try:
            connection.connection.driver_connection.execute(statement)
        except dbapi_error as exc:
            raise sa_exc.DBAPIError.instance(statement, (), exc, dbapi_error) from exc


class DriverStatement:
    """A Core statement compiled once and then run straight on the DBAPI cursor.

    For the store's hottest writes on SQLite, where SQLAlchemy's per-execution work (cache
    lookup, parameter processing, result set-up) costs several times what SQLite itself needs.
    Column types still apply: each value passes through its type's bind processor. Driver errors
    are wrapped as SQLAlchemy's, so :func:`translate_errors` treats both paths alike.
    """

    def __init__(self, statement: Executable, dialect: Dialect, column_keys: Sequence[str] | None = None) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(column_keys) if column_keys else None)
        if compiled.positiontup is None or getattr(compiled, "insert_prefetch", None) or getattr(
            compiled, "update_prefetch", None
        ):
            raise ValueError("only positional statements without Python-side defaults run on the driver")
        self.sql = compiled.string
        self._steps = [(name, compiled.binds[name].type.bind_processor(dialect)) for name in compiled.positiontup]
        self._dbapi_error = dialect.loaded_dbapi.Error

    def run(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute once per row, inside the connection's current transaction."""
        steps = self._steps
        params = [
            tuple(row[name] if process is None else process(row[name]) for name, process in steps)
            for row in rows
        ]
        cursor = connection.connection.cursor()
        try:
            cursor.executemany(self.sql, params)
        except self._dbapi_error as exc:
            raise sa_exc.DBAPIError.instance(self.sql, params, exc, self._dbapi_error) from exc
        finally:
            cursor.close()


def is_locked_error(exc: BaseException) -> bool:
    text = str(getattr(exc, "orig", None) or exc).lower()
    return any(message in text for message in _LOCKED_MESSAGES)


def is_interrupted_error(exc: sa_exc.DBAPIError) -> bool:
    """Whether a driver error broke off a transaction for a reason that passes (see
    :class:`StoreInterruptedError`), as opposed to a bug or a broken database, which retrying cannot mend."""
    if exc.connection_invalidated:  # SQLAlchemy's own verdict: the connection is gone
        return True
    if _mysql_errno(exc.orig) in _TRANSIENT_MYSQL_ERRORS:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if sqlstate:
        return sqlstate in _TRANSIENT_SQLSTATES or sqlstate.startswith("08")
    if not isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)):
        return False
    text = str(exc.orig).lower()
    return any(message in text for message in _BROKEN_CONNECTION_MESSAGES)


def _mysql_errno(error: BaseException | None) -> int | None:
    """The error number of a PyMySQL error (its first argument), None for other drivers' errors."""
    if error is None or not type(error).__module__.startswith("pymysql"):
        return None
    first = error.args[0] if error.args else None
    return first if isinstance(first, int) else None


@contextmanager
def translate_errors(url: str) -> Iterator[None]:
    """Re-raise driver errors the store's callers can act on as nbflow errors.

    The transient ones become :class:`~nbflow.errors.TransientStoreError`: a locked SQLite file, a
    server that cannot be reached, a connection that broke or a transaction the server aborted. Every
    other error propagates unchanged: it is a bug or a broken database, not a condition to wait out.
    """
    try:
        yield
    except sa_exc.DBAPIError as exc:
        if is_locked_error(exc):
            raise DatabaseLockedError(safe_url(url), str(exc.orig)) from exc
        if exc.statement is None and isinstance(exc, sa_exc.OperationalError):
            # SQLAlchemy wraps a failure to connect without a statement: the server is down, the
            # host, port or login is wrong. A scheduler host retries it; a command reports it.
            raise StoreUnavailableError(safe_url(url), str(exc.orig)) from exc
        if is_interrupted_error(exc):
            raise StoreInterruptedError(safe_url(url), str(exc.orig)) from exc
        raise
    except sa_exc.StatementError as exc:
        # A value refused while binding parameters (a naive datetime): the caller's mistake,
        # reported as the ValueError/TypeError it is rather than as a database failure.
        if not isinstance(exc, sa_exc.DBAPIError) and isinstance(exc.orig, (ValueError, TypeError)):
            raise type(exc.orig)(str(exc.orig)) from exc
        raise


@contextmanager
def url_source(source: str | None) -> Iterator[None]:
    """Name where the database URL came from (see :meth:`Settings.source_of`) in the errors about it
    raised inside the block, so that the message points at the place to fix."""
    try:
        yield
    except ConfigError as exc:
        if source is None or exc.source is not None or exc.key != "database_url":
            raise
        raise ConfigError(exc.key, exc.value, exc.problem, source) from exc.__cause__
    except StoreUnavailableError as exc:
        if source is None or exc.source is not None:
            raise
        raise StoreUnavailableError(exc.url, exc.detail, source) from exc.__cause__


@contextmanager
def write_transaction(engine: Engine, url: str) -> Iterator[Connection]:
    """A connection inside one write transaction, committed on success, errors translated."""
    with translate_errors(url), engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            connection.execution_options(**{BEGIN_OPTION: "BEGIN IMMEDIATE"})
        with connection.begin():
            yield connection


@contextmanager
def read_connection(engine: Engine, url: str) -> Iterator[Connection]:
    """A connection for reads; its transaction ends when the block does."""
    with translate_errors(url), engine.connect() as connection:
        yield connection
