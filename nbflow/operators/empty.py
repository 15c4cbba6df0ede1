"""``EmptyOperator``: a task that does nothing, for joining and naming points in a DAG."""

from __future__ import annotations

from typing import Any, ClassVar

from nbflow.operators.base import BaseOperator


class EmptyOperator(BaseOperator):
    kind: ClassVar[str] = "empty"

    def execute(self, context: dict[str, Any]) -> None:
        return None
