"""nbflow inside Jupyter: the ``%%dag`` and ``%nbflow`` magics.

Loading this package does nothing; ``%load_ext nbflow`` (or ``%load_ext nbflow.jupyter``) registers
the magics in the running IPython.
"""

from __future__ import annotations

from typing import Any


def load_ipython_extension(ipython: Any) -> None:
    from nbflow.jupyter.magics import load_ipython_extension as load

    load(ipython)
