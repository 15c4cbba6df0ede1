"""Assets: the asset table, asset events, and which events each consuming DAG has taken.

Revision ID: 0007
Revises: 0006
Create Date: 2024-10-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from nbflow.store.coltypes import timestamp

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "asset",
        sa.Column("uri", sa.String(500), nullable=False),
        sa.Column("extra", sa.JSON()),
        sa.Column("created_at", timestamp()),
        sa.PrimaryKeyConstraint("uri", name="pk_asset"),
    )
    op.create_table(
        "asset_event",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uri", sa.String(500), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("source_dag_id", sa.String(250)),
        sa.Column("source_run_id", sa.String(250)),
        sa.Column("source_task_id", sa.String(250)),
        sa.Column("extra", sa.JSON()),
        sa.Column("created_at", timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_asset_event"),
    )
    op.create_index("ix_asset_event_uri", "asset_event", ["uri"])
    op.create_table(
        "asset_consumer",
        sa.Column("dag_id", sa.String(250), nullable=False),
        sa.Column("since_event_id", sa.Integer(), nullable=False),
        sa.Column("created_at", timestamp()),
        sa.PrimaryKeyConstraint("dag_id", name="pk_asset_consumer"),
    )
    op.create_table(
        "asset_dag_event",
        sa.Column("dag_id", sa.String(250), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("run_pk", sa.Integer()),
        sa.ForeignKeyConstraint(["event_id"], ["asset_event.id"], name="fk_asset_dag_event_event_id_asset_event",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["run_pk"], ["dag_run.id"], name="fk_asset_dag_event_run_pk_dag_run",
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("dag_id", "event_id", name="pk_asset_dag_event"),
    )
    op.create_index("ix_asset_dag_event_run_pk", "asset_dag_event", ["run_pk"])


def downgrade() -> None:
    # the indexes go with their tables (MySQL refuses to drop one a foreign key uses)
    op.drop_table("asset_dag_event")
    op.drop_table("asset_consumer")
    op.drop_table("asset_event")
    op.drop_table("asset")
