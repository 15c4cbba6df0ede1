"""Objects that travel to worker processes as bytes pickled once, however often they are sent.

A scheduler host sends the same operator with every try of a task, and the same DAG summary with
every task of a run. Pickling them with cloudpickle each time was about a fifth of the host's time
per task at a thousand tasks a second (``benchmarks/scheduling.py``), so a :class:`Shipped` keeps
its bytes, and a worker keeps what it unpickled from them: a task it ran before costs it nothing.
"""

from __future__ import annotations

import pickle
from typing import Any

#: how many unpickled objects a worker keeps. Operators are small; a worker that meets more
#: distinct ones than this starts over, so that the cache cannot grow without end.
WORKER_CACHE_SIZE = 1024


class Shipped:
    """``obj``, pickled with cloudpickle the first time it is sent and sent as those bytes after."""

    __slots__ = ("obj", "_blob")

    def __init__(self, obj: Any = None, *, blob: bytes | None = None) -> None:
        #: the object itself, until it is pickled; None when made from bytes pickled before
        self.obj = obj
        self._blob = blob

    @property
    def blob(self) -> bytes:
        if self._blob is None:
            import cloudpickle

            # two threads racing here pickle twice and keep one result; both are the same
            self._blob = cloudpickle.dumps(self.obj, protocol=5)
        return self._blob

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return unship, (self.blob,)

    def __repr__(self) -> str:
        return f"Shipped({self.obj!r})"


_unshipped: dict[bytes, Any] = {}


def unship(blob: bytes) -> Any:
    """The object behind ``blob``, unpickled once per process (the other end of :class:`Shipped`).

    Every call that gets it here shares the object, as the tries of a thread executor share their
    operator: whoever changes it must copy it first (the runner does).
    """
    obj = _unshipped.get(blob)
    if obj is None:
        obj = pickle.loads(blob)
        if len(_unshipped) >= WORKER_CACHE_SIZE:
            _unshipped.clear()
        _unshipped[blob] = obj
    return obj
