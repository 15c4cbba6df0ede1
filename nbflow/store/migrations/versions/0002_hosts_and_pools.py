"""Scheduler hosts (who is alive, what it runs) and pools of task slots.

Revision ID: 0002
Revises: 0001
Create Date: 2024-06-15
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from nbflow.store.coltypes import timestamp

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _when(name: str) -> sa.Column:
    return sa.Column(name, timestamp())


def upgrade() -> None:
    op.create_table(
        "scheduler_host",
        sa.Column("host_id", sa.String(64), nullable=False),
        sa.Column("hostname", sa.String(250)),
        sa.Column("pid", sa.Integer()),
        sa.Column("kind", sa.String(20)),
        sa.Column("state", sa.String(20), nullable=False),
        _when("started_at"),
        _when("heartbeat_at"),
        _when("stopped_at"),
        sa.Column("detail", sa.JSON()),
        sa.PrimaryKeyConstraint("host_id", name="pk_scheduler_host"),
    )
    op.create_table(
        "pool",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text()),
        sa.PrimaryKeyConstraint("name", name="pk_pool"),
    )


def downgrade() -> None:
    op.drop_table("pool")
    op.drop_table("scheduler_host")
