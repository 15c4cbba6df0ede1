"""Claim fences: a token on each task instance that every claim raises, and the fence of each try.

Revision ID: 0004
Revises: 0003
Create Date: 2024-07-15

A host writes a task instance only while the row still carries the fence its claim got, so a write
it buffered before another host's claim can no longer land over that claim. Existing rows start at
fence 0 (no claim seen yet); tries recorded before this step keep NULL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch mode: SQLite cannot drop columns in place, and the downgrade must work there too
    with op.batch_alter_table("task_instance") as batch:
        batch.add_column(sa.Column("fence", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("task_try") as batch:
        batch.add_column(sa.Column("fence", sa.Integer()))


def downgrade() -> None:
    with op.batch_alter_table("task_try") as batch:
        batch.drop_column("fence")
    with op.batch_alter_table("task_instance") as batch:
        batch.drop_column("fence")
