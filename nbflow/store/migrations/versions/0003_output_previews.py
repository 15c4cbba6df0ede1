"""Output previews: the kind, type and cut repr of each task output, stored when it is written.

Revision ID: 0003
Revises: 0002
Create Date: 2024-07-01

Views show an output from these columns instead of unpickling its file (unpickling runs code).
Rows written before this step keep NULL there; views say that no preview is stored.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("kind", "type_name", "preview")


def upgrade() -> None:
    # batch mode: SQLite cannot drop columns in place, and the downgrade must work there too
    with op.batch_alter_table("task_output") as batch:
        batch.add_column(sa.Column("kind", sa.String(20)))
        batch.add_column(sa.Column("type_name", sa.Text()))
        batch.add_column(sa.Column("preview", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("task_output") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
