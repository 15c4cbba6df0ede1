"""The loop inside a process worker: receive a pickled call, run it, send back how it ended.

This file runs as a script (``python _worker.py FD``), not as ``nbflow.executors._worker``, so that
a worker imports the standard library and cloudpickle only; whatever else a call needs (nbflow's
runner, pandas, the user's modules) is imported by unpickling that call. Keep it that way: no nbflow
import here.

The wire protocol, over one socket (``multiprocessing.connection`` framing), is in
``nbflow/executors/process.py``; this side of it:

* first message from the parent: ``pickle`` of ``{"path": [...]}``, the parent's ``sys.path``,
  so that functions pickled by reference import the same modules;
* the worker answers ``b"ready"`` once it can take calls, so that start-up time is not counted
  against the first call's timeout;
* then each message is a ``cloudpickle`` of ``(fn, args)``, answered by a ``pickle`` of
  ``(status, started_at, ended_at, type_name, body)``; an empty message means "exit now".
"""

import os
import sys

# this script's own folder must not shadow anything the calls import (already loaded: os, sys)
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import pickle  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from multiprocessing.connection import Connection  # noqa: E402
from typing import Any  # noqa: E402


def _type_name(obj: Any) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    module = getattr(cls, "__module__", "")
    return cls.__qualname__ if module in ("builtins", "", None) else f"{module}.{cls.__qualname__}"


def _error_body(exc: BaseException, dumps: Any) -> tuple[Any, ...]:
    """The exception pickled if it can be, plus what a stand-in needs if it cannot."""
    tb = exc.__traceback__
    if tb is not None and tb.tb_next is not None:
        tb = tb.tb_next  # drop this loop's own frame
    exc.__traceback__ = tb
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    try:
        pickled = dumps(exc)
    except Exception:
        pickled = None
    return (pickled, _type_name(exc), str(exc), text)


def _run(data: bytes, dumps: Any) -> bytes:
    started = time.time()
    try:
        fn, args = pickle.loads(data)
        value = fn(*args)
    except BaseException as exc:  # SystemExit from a task is the task's failure, not the worker's
        ended = time.time()
        return pickle.dumps(("error", started, ended, _type_name(exc), _error_body(exc, dumps)), protocol=5)
    ended = time.time()
    try:
        body = dumps(value)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        return pickle.dumps(("unpicklable", started, ended, _type_name(value), reason), protocol=5)
    return pickle.dumps(("ok", started, ended, "", body), protocol=5)


def main() -> None:
    conn = Connection(int(sys.argv[1]))
    setup = pickle.loads(conn.recv_bytes())
    sys.path[:] = setup["path"]
    import cloudpickle

    dumps = cloudpickle.dumps
    conn.send_bytes(b"ready")
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the parent is gone: nobody would read an answer
        if not data:
            return
        reply = _run(data, dumps)
        _flush()  # a call's prints should reach the log before its outcome does
        try:
            conn.send_bytes(reply)
        except OSError:
            return


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


if __name__ == "__main__":
    code = 0
    try:
        main()
    except KeyboardInterrupt:
        pass
    except BaseException:
        traceback.print_exc()
        code = 1
    _flush()
    # skip interpreter teardown: a thread left behind by a task must not keep the worker alive
    os._exit(code)
