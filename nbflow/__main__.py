"""``python -m nbflow``: the same as the ``nbflow`` command."""

from nbflow.cli import run

run()
