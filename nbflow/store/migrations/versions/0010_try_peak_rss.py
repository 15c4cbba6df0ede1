"""A try's peak memory: the most resident memory (bytes) its processes held at once.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04

NULL for tries recorded before, and where it was not measured (tasks run in the host's own
process). A column added, no table rebuilt.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("task_try") as batch:
        batch.add_column(sa.Column("peak_rss", sa.BigInteger()))


def downgrade() -> None:
    with op.batch_alter_table("task_try") as batch:
        batch.drop_column("peak_rss")
