"""The ``nbflow`` command line.

Each command parses its arguments and calls the public API; imports happen inside the command so that
``nbflow dags test`` pays only for what it uses. One module per group of commands; this one runs them.
"""

from __future__ import annotations

import sys
from typing import Sequence

from nbflow.cli.parser import build_parser
from nbflow.cli.reports import parse_param
from nbflow.errors import ConfigError, NbflowError, StoreUnavailableError

__all__ = ["build_parser", "main", "parse_param", "run"]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    positional = getattr(args, "logical_date_arg", None)
    if positional is not None:  # Airflow's `dags test DAG DATE`
        if args.logical_date is not None:
            parser.error(f"the logical date is given twice ({positional} and --logical-date {args.logical_date}); "
                         "give it once")
        args.logical_date = positional
    try:
        return int(args.func(args) or 0)
    except (ConfigError, StoreUnavailableError) as exc:
        # the setup is wrong, not the request: the exit status of a usage error, as argparse's
        print(f"nbflow: error: {exc}", file=sys.stderr)
        return 2
    except NbflowError as exc:
        print(f"nbflow: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


def run() -> None:
    """The console entry point: ``main``, then a fast exit.

    Tearing down the interpreter after SQLAlchemy is loaded takes about 0.1 s, which is a fifth of a
    small ``nbflow dags test``; everything worth keeping is flushed first, and the executors have
    already stopped their workers.
    """
    import logging
    import os

    from nbflow.importcost import skip_costly_optional_imports

    skip_costly_optional_imports()
    try:
        code = main()
    except SystemExit as exc:  # argparse and usage errors
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            code = 2
        else:
            code = exc.code or 0
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    kernels = sys.modules.get("nbflow.notebook.pool")
    if kernels is not None:  # no kernel outlives the command, also one shutting down in the background
        kernels.close_kernels()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    run()
