"""The initial nbflow schema.

Revision ID: 0001
Revises:
Create Date: 2024-06-01

Written out in full rather than built from ``nbflow.store.schema`` so that later changes to the
live schema never change what this step did; a test checks that both agree at head.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from nbflow.store.coltypes import timestamp

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = 250
STATE = 20


def _when(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, timestamp(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "dag",
        sa.Column("dag_id", sa.String(ID), nullable=False),
        sa.Column("fileloc", sa.Text()),
        sa.Column("source_kind", sa.String(STATE)),
        sa.Column("schedule", sa.Text()),
        sa.Column("timezone", sa.String(64)),
        sa.Column("description", sa.Text()),
        sa.Column("owner", sa.String(ID)),
        sa.Column("tags", sa.JSON()),
        sa.Column("is_paused", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("max_active_runs", sa.Integer()),
        sa.Column("max_active_tasks", sa.Integer()),
        sa.Column("definition", sa.JSON()),
        _when("next_run_at"),
        _when("last_parsed_at"),
        _when("updated_at"),
        sa.PrimaryKeyConstraint("dag_id", name="pk_dag"),
    )
    op.create_table(
        "dag_run",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dag_id", sa.String(ID), nullable=False),
        sa.Column("run_id", sa.String(ID), nullable=False),
        sa.Column("run_type", sa.String(STATE), nullable=False),
        sa.Column("state", sa.String(STATE), nullable=False),
        _when("logical_date"),
        _when("data_interval_start"),
        _when("data_interval_end"),
        sa.Column("conf", sa.JSON()),
        _when("queued_at"),
        _when("start_date"),
        _when("end_date"),
        sa.PrimaryKeyConstraint("id", name="pk_dag_run"),
        sa.ForeignKeyConstraint(
            ["dag_id"], ["dag.dag_id"], name="fk_dag_run_dag_id_dag", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("dag_id", "run_id", name="uq_dag_run_dag_id_run_id"),
    )
    op.create_index("ix_dag_run_dag_id_logical_date", "dag_run", ["dag_id", "logical_date"])
    op.create_table(
        "task_instance",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_pk", sa.Integer(), nullable=False),
        sa.Column("dag_id", sa.String(ID), nullable=False),
        sa.Column("run_id", sa.String(ID), nullable=False),
        sa.Column("task_id", sa.String(ID), nullable=False),
        sa.Column("state", sa.String(STATE), nullable=False),
        sa.Column("try_number", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("max_tries", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("operator", sa.String(100)),
        sa.Column("pool", sa.String(100)),
        sa.Column("priority_weight", sa.Integer(), nullable=False, server_default="1"),
        _when("queued_at"),
        _when("start_date"),
        _when("end_date"),
        sa.Column("duration", sa.Float()),
        sa.Column("hostname", sa.String(ID)),
        sa.Column("pid", sa.Integer()),
        _when("heartbeat_at"),
        _when("next_retry_at"),
        sa.Column("log_path", sa.Text()),
        sa.Column("error", sa.Text()),
        sa.Column("claimed_by", sa.String(ID)),
        _when("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_task_instance"),
        sa.ForeignKeyConstraint(
            ["run_pk"], ["dag_run.id"], name="fk_task_instance_run_pk_dag_run", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("run_pk", "task_id", name="uq_task_instance_run_pk_task_id"),
    )
    op.create_index("ix_task_instance_state", "task_instance", ["state"])
    op.create_table(
        "task_try",
        sa.Column("run_pk", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.String(ID), nullable=False),
        sa.Column("try_number", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(STATE), nullable=False),
        _when("start_date"),
        _when("end_date"),
        sa.Column("duration", sa.Float()),
        sa.Column("hostname", sa.String(ID)),
        sa.Column("pid", sa.Integer()),
        sa.Column("log_path", sa.Text()),
        sa.Column("error", sa.Text()),
        sa.PrimaryKeyConstraint("run_pk", "task_id", "try_number", name="pk_task_try"),
        sa.ForeignKeyConstraint(
            ["run_pk"], ["dag_run.id"], name="fk_task_try_run_pk_dag_run", ondelete="CASCADE"
        ),
    )
    op.create_table(
        "task_output",
        sa.Column("run_pk", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.String(ID), nullable=False),
        sa.Column("value_json", sa.Text()),
        sa.Column("artifact_path", sa.Text()),
        sa.Column("size", sa.Integer()),
        _when("created_at"),
        sa.PrimaryKeyConstraint("run_pk", "task_id", name="pk_task_output"),
        sa.ForeignKeyConstraint(
            ["run_pk"], ["dag_run.id"], name="fk_task_output_run_pk_dag_run", ondelete="CASCADE"
        ),
    )
    op.create_table(
        "import_error",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("fileloc", sa.String(1000), nullable=False),
        sa.Column("summary", sa.Text()),
        sa.Column("traceback", sa.Text()),
        _when("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_import_error"),
        sa.UniqueConstraint("fileloc", name="uq_import_error_fileloc"),
    )
    op.create_table(
        "event",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _when("at", nullable=False),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("dag_id", sa.String(ID)),
        sa.Column("run_id", sa.String(ID)),
        sa.Column("task_id", sa.String(ID)),
        sa.Column("detail", sa.JSON()),
        sa.PrimaryKeyConstraint("id", name="pk_event"),
    )
    op.create_index("ix_event_dag_id", "event", ["dag_id"])


def downgrade() -> None:
    # the indexes go with their tables (MySQL refuses to drop one a foreign key uses)
    for table in ("event", "import_error", "task_output", "task_try", "task_instance", "dag_run", "dag"):
        op.drop_table(table)
