"""Where a try ran on a cluster: the address of the Dask worker that ran it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04

NULL for tries recorded before, and for tries of executors without cluster workers. A column
added, no table rebuilt.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("task_try") as batch:
        batch.add_column(sa.Column("worker", sa.String(250)))


def downgrade() -> None:
    with op.batch_alter_table("task_try") as batch:
        batch.drop_column("worker")
