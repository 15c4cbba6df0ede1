"""Values tasks push under keys of their own (``ti.xcom_push``), beside their return values.

Revision ID: 0006
Revises: 0005
Create Date: 2024-09-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from nbflow.store.coltypes import timestamp

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "task_xcom",
        sa.Column("run_pk", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.String(250), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value_json", sa.Text()),
        sa.Column("artifact_path", sa.Text()),
        sa.Column("size", sa.Integer()),
        sa.Column("created_at", timestamp()),
        sa.Column("kind", sa.String(20)),
        sa.Column("type_name", sa.Text()),
        sa.Column("preview", sa.Text()),
        sa.ForeignKeyConstraint(["run_pk"], ["dag_run.id"], name="fk_task_xcom_run_pk_dag_run", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_pk", "task_id", "key", name="pk_task_xcom"),
    )


def downgrade() -> None:
    op.drop_table("task_xcom")
