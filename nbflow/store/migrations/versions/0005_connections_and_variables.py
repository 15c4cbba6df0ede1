"""Connections and variables: credentials and settings that DAG code names instead of holding.

Revision ID: 0005
Revises: 0004
Create Date: 2024-08-01

Passwords, connection extras and variable values are stored as Fernet tokens (nbflow.store.crypto).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from nbflow.store.coltypes import timestamp

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "connection",
        sa.Column("conn_id", sa.String(250), nullable=False),
        sa.Column("conn_type", sa.String(500), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("host", sa.String(500)),
        sa.Column("schema", sa.String(500)),
        sa.Column("login", sa.Text()),
        sa.Column("password", sa.Text()),
        sa.Column("port", sa.Integer()),
        sa.Column("extra", sa.Text()),
        sa.Column("updated_at", timestamp()),
        sa.PrimaryKeyConstraint("conn_id", name="pk_connection"),
    )
    op.create_table(
        "variable",
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.Text()),
        sa.Column("description", sa.Text()),
        sa.Column("is_encrypted", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("updated_at", timestamp()),
        sa.PrimaryKeyConstraint("key", name="pk_variable"),
    )


def downgrade() -> None:
    op.drop_table("variable")
    op.drop_table("connection")
