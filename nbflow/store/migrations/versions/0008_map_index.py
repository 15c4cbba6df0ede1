"""Mapped task instances: a map index beside the task id of every task instance, try, output and
pushed value.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04

A mapped task (``add.expand(x=[...])``) has one row of its own (map index -1, the state the planner
sees) and one row per instance (0, 1, ...). Every other task keeps -1, so existing rows need no
rewrite; the keys that named a task instance by (run, task) now name it by (run, task, map index).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from nbflow.store.coltypes import MYSQL_DIALECTS

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: table -> (its old key, its new key); task_instance's is a unique constraint, the others' primary keys
_KEYS = {
    "task_instance": (("run_pk", "task_id"), ("run_pk", "task_id", "map_index")),
    "task_try": (("run_pk", "task_id", "try_number"), ("run_pk", "task_id", "map_index", "try_number")),
    "task_output": (("run_pk", "task_id"), ("run_pk", "task_id", "map_index")),
    "task_xcom": (("run_pk", "task_id", "key"), ("run_pk", "task_id", "map_index", "key")),
}


def _name(table: str, columns: Sequence[str]) -> str:
    return f"uq_{table}_{'_'.join(columns)}" if table == "task_instance" else f"pk_{table}"


def _rekey(table: str, old: Sequence[str], new: Sequence[str]) -> None:
    if op.get_bind().dialect.name in MYSQL_DIALECTS:
        # MySQL refuses to drop the key that its foreign key on run_pk uses: the new key (which
        # starts with run_pk too) comes first, or both change in one statement.
        if table == "task_instance":
            op.create_unique_constraint(_name(table, new), table, list(new))
            op.drop_constraint(_name(table, old), table, type_="unique")
        else:
            op.execute(sa.text(f"ALTER TABLE {table} DROP PRIMARY KEY, ADD PRIMARY KEY "
                               f"({', '.join(f'`{column}`' for column in new)})"))
        return
    with op.batch_alter_table(table) as batch:
        if table == "task_instance":
            batch.drop_constraint(_name(table, old), type_="unique")
            batch.create_unique_constraint(_name(table, new), list(new))
        else:
            batch.drop_constraint(_name(table, old), type_="primary")
            batch.create_primary_key(_name(table, new), list(new))


def upgrade() -> None:
    for table, (old, new) in _KEYS.items():
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("map_index", sa.Integer(), nullable=False, server_default="-1"))
        _rekey(table, old, new)


def downgrade() -> None:
    for table, (old, new) in _KEYS.items():
        op.execute(sa.text(f"DELETE FROM {table} WHERE map_index >= 0"))
        _rekey(table, new, old)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("map_index")
