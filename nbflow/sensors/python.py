"""``PythonSensor``: wait until a Python callable returns something truthy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from nbflow.operators.python import PythonOperator
from nbflow.sensors.base import BaseSensor, PokeReturnValue


class PythonSensor(BaseSensor, PythonOperator):
    """Pokes by calling ``python_callable(*op_args, **op_kwargs)``; a truthy result means done.

    The callable is called exactly as a :class:`PythonOperator` calls it (context values by
    parameter name, ``**kwargs`` for the whole context, ``templates_dict``), because it inherits that
    operator's calling code; the sensor half, first in the method order, decides how often and for
    how long (its ``execute`` wins). Return a :class:`PokeReturnValue` to make its ``xcom_value``
    the task's output.
    """

    template_fields: ClassVar[Sequence[str]] = PythonOperator.template_fields
    kind: ClassVar[str] = "sensor"

    def waiting_for(self) -> str:
        return f"{getattr(self.python_callable, '__qualname__', 'callable')}() to be truthy"

    def poke(self, context: dict[str, Any]) -> bool | PokeReturnValue:
        return PythonOperator.execute(self, context)
