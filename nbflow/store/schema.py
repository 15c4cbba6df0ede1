"""The tables of the metadata store, as SQLAlchemy Core.

Core rather than ORM because the scheduler records every task outcome here: statements built once
and executed with plain parameter dicts keep a task's bookkeeping far below a millisecond. The
initial migration creates exactly these tables; a test compares the two.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from nbflow.store.coltypes import MYSQL_DIALECTS, timestamp

#: Deterministic constraint names, so migrations can address them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = 250  # length of dag, run and task ids
STATE = 20


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend.

    A naive datetime is refused on write because its zone is a guess, and a wrong guess shifts a
    schedule by hours. SQLite and MySQL keep no zone, so values go in as naive UTC and come back
    tagged UTC; MySQL's column is ``DATETIME(6)`` (see :mod:`nbflow.store.coltypes`).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        return dialect.type_descriptor(timestamp() if dialect.name in MYSQL_DIALECTS else self.impl)

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}: {value!r}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"naive datetime {value.isoformat()} refused: the store keeps aware UTC times. "
                "Attach a zone, e.g. value.replace(tzinfo=datetime.UTC) or pendulum/zoneinfo."
            )
        value = value.astimezone(UTC)
        if dialect.name in ("sqlite", *MYSQL_DIALECTS):
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData(naming_convention=NAMING_CONVENTION)

dag = Table(
    "dag",
    metadata,
    Column("dag_id", String(ID), primary_key=True),
    Column("fileloc", Text),
    Column("source_kind", String(STATE)),  # 'file' | 'notebook' | 'interactive'
    Column("schedule", Text),
    Column("timezone", String(64)),
    Column("description", Text),
    Column("owner", String(ID)),
    Column("tags", JSON),
    Column("is_paused", Boolean, nullable=False, default=False, server_default=false()),
    Column("max_active_runs", Integer),
    Column("max_active_tasks", Integer),
    Column("definition", JSON),
    Column("next_run_at", UTCDateTime),
    Column("last_parsed_at", UTCDateTime),
    Column("updated_at", UTCDateTime),
)

dag_run = Table(
    "dag_run",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dag_id", String(ID), ForeignKey("dag.dag_id", ondelete="CASCADE"), nullable=False),
    Column("run_id", String(ID), nullable=False),
    Column("run_type", String(STATE), nullable=False),  # 'manual' | 'scheduled' | 'backfill' | 'test' | 'asset_triggered'
    Column("state", String(STATE), nullable=False),
    Column("logical_date", UTCDateTime),
    Column("data_interval_start", UTCDateTime),
    Column("data_interval_end", UTCDateTime),
    Column("conf", JSON),
    Column("queued_at", UTCDateTime),
    Column("start_date", UTCDateTime),
    Column("end_date", UTCDateTime),
    # when the notice of a missed DAG deadline went out; set once, by the host that sends it
    Column("deadline_notified_at", UTCDateTime),
    UniqueConstraint("dag_id", "run_id"),
    Index("ix_dag_run_dag_id_logical_date", "dag_id", "logical_date"),
)

task_instance = Table(
    "task_instance",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_pk", Integer, ForeignKey("dag_run.id", ondelete="CASCADE"), nullable=False),
    Column("dag_id", String(ID), nullable=False),
    Column("run_id", String(ID), nullable=False),
    Column("task_id", String(ID), nullable=False),
    Column("state", String(STATE), nullable=False),
    Column("try_number", Integer, nullable=False, default=0, server_default="0"),
    Column("max_tries", Integer, nullable=False, default=0, server_default="0"),
    Column("operator", String(100)),
    Column("pool", String(100)),
    Column("priority_weight", Integer, nullable=False, default=1, server_default="1"),
    Column("queued_at", UTCDateTime),
    Column("start_date", UTCDateTime),
    Column("end_date", UTCDateTime),
    Column("duration", Float),
    Column("hostname", String(ID)),
    Column("pid", Integer),
    Column("heartbeat_at", UTCDateTime),
    Column("next_retry_at", UTCDateTime),
    Column("log_path", Text),
    Column("error", Text),
    Column("claimed_by", String(ID)),
    Column("updated_at", UTCDateTime),
    # The claim's fence: every claim (and adoption, clear, mark) raises it by one, and a host's write
    # of this row lands only while the row still has the fence that host holds (see Store.record).
    Column("fence", Integer, nullable=False, default=0, server_default="0"),
    # -1, or the instance's place in a mapped task (0, 1, ...); the mapped task's own row has -1
    Column("map_index", Integer, nullable=False, default=-1, server_default="-1"),
    UniqueConstraint("run_pk", "task_id", "map_index"),
    Index("ix_task_instance_state", "state"),
)

task_try = Table(
    "task_try",
    metadata,
    Column("run_pk", Integer, ForeignKey("dag_run.id", ondelete="CASCADE"), nullable=False),
    Column("task_id", String(ID), nullable=False),
    Column("try_number", Integer, nullable=False),
    Column("state", String(STATE), nullable=False),
    Column("start_date", UTCDateTime),
    Column("end_date", UTCDateTime),
    Column("duration", Float),
    Column("hostname", String(ID)),
    Column("pid", Integer),
    Column("log_path", Text),
    Column("error", Text),
    # The fence of the claim that started the try (or of the host that adopted it): only its holder
    # writes the try's outcome. NULL for tries recorded without a claim (dag.test(), before 0004).
    Column("fence", Integer),
    Column("map_index", Integer, nullable=False, default=-1, server_default="-1"),
    # the most resident memory (bytes) the try's processes held at once; NULL where not measured
    Column("peak_rss", BigInteger),
    # the cluster worker that ran the try (a Dask worker's address); NULL for other executors
    Column("worker", String(ID)),
    PrimaryKeyConstraint("run_pk", "task_id", "map_index", "try_number"),
)

task_output = Table(
    "task_output",
    metadata,
    Column("run_pk", Integer, ForeignKey("dag_run.id", ondelete="CASCADE"), nullable=False),
    Column("task_id", String(ID), nullable=False),
    Column("value_json", Text),
    Column("artifact_path", Text),
    Column("size", Integer),
    Column("created_at", UTCDateTime),
    # What views show, made where the task ran (see nbflow.outputs): showing a pickled output must
    # never unpickle it. NULL in rows written before migration 0003.
    Column("kind", String(STATE)),  # 'json' | 'pickle'
    Column("type_name", Text),
    Column("preview", Text),
    Column("map_index", Integer, nullable=False, default=-1, server_default="-1"),
    PrimaryKeyConstraint("run_pk", "task_id", "map_index"),
)

# Values a task pushed under a key of its own (``ti.xcom_push(key=..., value=...)``), beside its
# return value in task_output; written with the try's outcome, gone when the task is cleared.
task_xcom = Table(
    "task_xcom",
    metadata,
    Column("run_pk", Integer, ForeignKey("dag_run.id", ondelete="CASCADE"), nullable=False),
    Column("task_id", String(ID), nullable=False),
    Column("key", String(ID), nullable=False),
    Column("value_json", Text),
    Column("artifact_path", Text),
    Column("size", Integer),
    Column("created_at", UTCDateTime),
    Column("kind", String(STATE)),  # 'json' | 'pickle'
    Column("type_name", Text),
    Column("preview", Text),
    Column("map_index", Integer, nullable=False, default=-1, server_default="-1"),
    PrimaryKeyConstraint("run_pk", "task_id", "map_index", "key"),
)

import_error = Table(
    "import_error",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fileloc", String(1000), nullable=False),
    Column("summary", Text),
    Column("traceback", Text),
    Column("created_at", UTCDateTime),
    UniqueConstraint("fileloc"),
)

event = Table(
    "event",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("kind", String(50), nullable=False),
    Column("dag_id", String(ID)),
    Column("run_id", String(ID)),
    Column("task_id", String(ID)),
    Column("detail", JSON),
    Index("ix_event_dag_id", "dag_id"),
)

scheduler_host = Table(
    "scheduler_host",
    metadata,
    Column("host_id", String(64), primary_key=True),
    Column("hostname", String(ID)),
    Column("pid", Integer),
    Column("kind", String(STATE)),  # 'daemon' | 'kernel' | 'jupyter-server' | 'server-run' | 'backfill'
    Column("state", String(STATE), nullable=False),  # 'running' | 'stopped'
    Column("started_at", UTCDateTime),
    Column("heartbeat_at", UTCDateTime),
    Column("stopped_at", UTCDateTime),
    Column("detail", JSON),
)

pool = Table(
    "pool",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("slots", Integer, nullable=False),
    Column("description", Text),
)

# Connections and variables keep credentials out of DAG code. Passwords, extras and variable values
# hold Fernet tokens (nbflow.store.crypto), never plaintext.
connection = Table(
    "connection",
    metadata,
    Column("conn_id", String(ID), primary_key=True),
    Column("conn_type", String(500), nullable=False),
    Column("description", Text),
    Column("host", String(500)),
    Column("schema", String(500)),
    Column("login", Text),
    Column("password", Text),  # encrypted
    Column("port", Integer),
    Column("extra", Text),  # encrypted JSON object
    Column("updated_at", UTCDateTime),
)

variable = Table(
    "variable",
    metadata,
    Column("key", String(ID), primary_key=True),
    Column("value", Text),
    Column("description", Text),
    # False only for a value written in plain text by hand: it is read as it is
    Column("is_encrypted", Boolean, nullable=False, default=True, server_default=true()),
    Column("updated_at", UTCDateTime),
)

# Assets (nbflow.assets): data named by URI, the events that say it was updated (by a task's
# outlets, or from outside: the command line, the REST API), and which events each consuming DAG has
# taken. A row of asset_dag_event is a claim: its primary key makes two hosts that see the same
# events start one run.
asset = Table(
    "asset",
    metadata,
    Column("uri", String(500), primary_key=True),
    Column("extra", JSON),
    Column("created_at", UTCDateTime),  # first seen
)

asset_event = Table(
    "asset_event",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("uri", String(500), nullable=False),
    Column("source", String(STATE), nullable=False),  # 'task' | 'api' | 'cli'
    Column("source_dag_id", String(ID)),
    Column("source_run_id", String(ID)),
    Column("source_task_id", String(ID)),
    Column("extra", JSON),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_asset_event_uri", "uri"),
)

# A DAG scheduled on assets counts events from the one it saw first (newer than since_event_id):
# events from before it was written cannot start it.
asset_consumer = Table(
    "asset_consumer",
    metadata,
    Column("dag_id", String(ID), primary_key=True),
    Column("since_event_id", Integer, nullable=False),
    Column("created_at", UTCDateTime),
)

asset_dag_event = Table(
    "asset_dag_event",
    metadata,
    Column("dag_id", String(ID), nullable=False),
    Column("event_id", Integer, ForeignKey("asset_event.id", ondelete="CASCADE"), nullable=False),
    # the run the events started; a deleted run keeps its events consumed (they started it once)
    Column("run_pk", Integer, ForeignKey("dag_run.id", ondelete="SET NULL")),
    PrimaryKeyConstraint("dag_id", "event_id"),
    Index("ix_asset_dag_event_run_pk", "run_pk"),
)

#: Alembic's bookkeeping table; read with plain SQL so the hot path never imports Alembic.
VERSION_TABLE = "alembic_version"
