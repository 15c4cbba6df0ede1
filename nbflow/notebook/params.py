"""Parameters into a notebook, as real typed values.

Values that are plain JSON data (str, int, finite float, bool, None, lists, dicts with string keys)
become Python literals in papermill's injected-parameters cell, after the cell tagged
``parameters`` (or at the top when there is none). Everything else (datetimes, tuples, sets,
arrays, any picklable object) is pickled to a file next to the output notebook, and the injected
cell loads it, so the notebook gets the very value, not its text.

nbflow's own set-up (the working directory, where ``nbflow.output`` records values, and on a
reused kernel clearing the previous run's variables) is no cell of the notebook: it runs on the
kernel before the first cell, silently and outside the history, so the executed notebook is the one
papermill would write, execution counts included.
"""

from __future__ import annotations

import math
import pickle
from typing import Any

from nbflow.notebook.outputs import ENV_VAR

#: tag of the cell older nbflow versions put first in the notebook (reports still leave it out)
BOOTSTRAP_TAG = "injected-nbflow"
#: tag of papermill's cell with the parameter values
PARAMETERS_TAG = "injected-parameters"
INJECTED_TAGS = frozenset({BOOTSTRAP_TAG, PARAMETERS_TAG})


def is_literal(value: Any) -> bool:
    """Whether papermill writes ``value`` as a literal that evaluates back to an equal value of the
    same type (exact types only: a ``bool`` subclass or an ``IntEnum`` is not plain data)."""
    kind = type(value)
    if value is None or kind in (str, bool, int):
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is list:
        return all(is_literal(item) for item in value)
    if kind is dict:
        return all(type(key) is str and is_literal(item) for key, item in value.items())
    return False


def split_parameters(parameters: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(literals, pickled)``: the values papermill can write, and the ones that travel by pickle."""
    literals = {name: value for name, value in parameters.items() if is_literal(value)}
    return literals, {name: value for name, value in parameters.items() if name not in literals}


def inject(
    nb: Any, parameters: dict[str, Any], *, kernel_name: str, cwd: str, outputs_file: str,
    pickle_file: str, reset: bool = False,
) -> tuple[Any, str]:
    """``(nb with the parameters injected as papermill does, nbflow's set-up code)``: the code runs
    on the kernel before the first cell, silently (see the module's docstring)."""
    from papermill.parameterize import parameterize_notebook

    literals, pickled = split_parameters(parameters)
    if parameters:
        nb = parameterize_notebook(nb, literals, kernel_name=kernel_name, language="python")
        nb.metadata.papermill["parameters"] = {
            **literals, **{name: f"<{type(value).__name__}, pickled>" for name, value in pickled.items()}
        }
    if pickled:
        with open(pickle_file, "wb") as handle:
            pickle.dump(pickled, handle, protocol=pickle.HIGHEST_PROTOCOL)
        cell = next(c for c in nb.cells if PARAMETERS_TAG in c.metadata.get("tags", []))
        cell.source += (
            "\n# values that are not plain JSON data arrive pickled, to keep their type\n"
            "import pickle as _nbflow_pickle\n"
            f"with open({pickle_file!r}, 'rb') as _nbflow_file:\n"
            "    globals().update(_nbflow_pickle.load(_nbflow_file))\n"
            "del _nbflow_pickle, _nbflow_file\n"
        )
    lines = []
    if reset:
        lines.append("get_ipython().run_line_magic('reset', '-f')")
    lines += [
        "import os as _nbflow_os",
        f"_nbflow_os.chdir({cwd!r})",
        f"_nbflow_os.environ[{ENV_VAR!r}] = {outputs_file!r}",
        "del _nbflow_os",
    ]
    return nb, "\n".join(lines)
