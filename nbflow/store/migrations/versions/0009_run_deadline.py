"""A run's deadline notice: when the notification of a missed ``deadline`` was sent.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04

The host that sets it (from NULL, in one update) is the one that sends the notice, so a run is told
about once however many hosts watch it. A column added, no table rebuilt.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from nbflow.store.coltypes import timestamp

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dag_run") as batch:
        batch.add_column(sa.Column("deadline_notified_at", timestamp()))


def downgrade() -> None:
    with op.batch_alter_table("dag_run") as batch:
        batch.drop_column("deadline_notified_at")
