"""Python callables as tasks: ``PythonOperator`` and the operator behind ``@task``."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Callable, ClassVar, Sequence

from nbflow.errors import DagDefinitionError, InvalidOptionError
from nbflow.operators.base import BaseOperator, context_arguments


class PythonOperator(BaseOperator):
    """Calls ``python_callable(*op_args, **op_kwargs)``; its return value is the task's output.

    Parameters of the callable named like context values (``ds``, ``logical_date``, ``params``,
    ``ti``, ...) receive them, and a ``**kwargs`` parameter receives the whole context.
    """

    template_fields: ClassVar[Sequence[str]] = ("templates_dict", "op_args", "op_kwargs")
    kind: ClassVar[str] = "python"

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Sequence[Any] | None = None,
        op_kwargs: dict[str, Any] | None = None,
        templates_dict: dict[str, Any] | None = None,
        templates_exts: Sequence[str] | None = None,
        multiple_outputs: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(multiple_outputs, bool):
            raise InvalidOptionError("multiple_outputs", multiple_outputs, "True or False", self.dag_id, self.task_id)
        #: the return value must be a dict; each of its keys is pulled on its own (``out["key"]``,
        #: ``xcom_pull(task_ids=..., key="key")``), as Airflow's multiple_outputs
        self.multiple_outputs = multiple_outputs
        if templates_exts is not None:
            if isinstance(templates_exts, str) or not all(
                isinstance(ext, str) and ext.startswith(".") for ext in templates_exts
            ):
                raise InvalidOptionError("templates_exts", templates_exts, 'a list of file extensions, e.g. [".sql"]',
                                         self.dag_id, self.task_id)
            #: strings of templates_dict, op_args or op_kwargs ending in one of these name template files
            self.template_ext = tuple(templates_exts)
        if not callable(python_callable):
            raise DagDefinitionError(
                f"python_callable must be callable, got {type(python_callable).__name__}",
                self.dag_id, self.task_id,
            )
        self.python_callable = python_callable
        self.op_args = list(op_args or ())
        self.op_kwargs = dict(op_kwargs or {})
        self.templates_dict = templates_dict

    def execute(self, context: dict[str, Any]) -> Any:
        if self.templates_dict is not None:
            context = {**context, "templates_dict": self.templates_dict}
        value = self.call(context)
        if self.multiple_outputs and not (isinstance(value, Mapping) and all(isinstance(k, str) for k in value)):
            from nbflow.errors import TaskFailedError

            raise TaskFailedError(
                self.dag_id or "", self.task_id,
                f"it returned {type(value).__name__}, and multiple_outputs=True needs a dict with text keys; "
                "return such a dict, or set multiple_outputs=False",
            )
        return value

    def call(self, context: dict[str, Any]) -> Any:
        args, kwargs = list(self.op_args), dict(self.op_kwargs)
        given = set(kwargs) | _positional_names(self.python_callable, len(args))
        kwargs.update(context_arguments(self.python_callable, context, given))
        return self.python_callable(*args, **kwargs)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["callable"] = getattr(self.python_callable, "__qualname__", repr(self.python_callable))
        return info


def _positional_names(fn: Callable[..., Any], count: int) -> set[str]:
    if not count:
        return set()
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return set()
    positional = [
        p.name for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    return set(positional[:count])
