"""Watch the memory of running calls: one thread per process executor, sampling with psutil.

A call's memory is the resident memory (RSS) of its worker process plus that of every process
below it (a notebook's kernel, a subprocess, a ``multiprocessing`` pool), summed: what the call
takes from the machine. A call with a ``memory_limit`` is sampled every :data:`LIMITED_INTERVAL`
seconds and, the first time it is over, handed to ``on_over`` (which kills it). A call without a
limit is sampled only once it has run :data:`UNLIMITED_INTERVAL` seconds, and then at that pace,
for its peak alone: the trivial tasks that make up most of a busy host's work are never sampled
(their worker reports its own high-water mark), so the watcher costs them nothing.

Why one thread and not one per call: at hundreds of tasks a second a thread per call would cost
more than the calls. Why not ``RLIMIT_AS``: it limits address space, not memory, and breaks
runtimes that reserve large address ranges up front (numpy's allocators, JIT compilers, the JVM).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil

#: seconds between samples of a call that has a memory limit: how far past its limit a call can
#: get before it is stopped is what it allocates in this time
LIMITED_INTERVAL = 0.1
#: seconds a call without a limit runs before it is first sampled, and between its samples
UNLIMITED_INTERVAL = 1.0

OnOver = Callable[[Any, int, int, list[psutil.Process]], None]


@dataclass(eq=False)
class _Watched:
    pid: int
    limit: int | None
    next_at: float
    peak: int = 0
    process: psutil.Process | None = None
    #: told to on_over already: it is being killed, and is not sampled again
    reported: bool = False
    tree: list[psutil.Process] = field(default_factory=list)


def children_map() -> dict[int, list[psutil.Process]]:
    """Every process of the machine by its parent's pid: one pass over them all, shared by the
    trees of one round of samples (finding one tree's descendants costs that same pass)."""
    children: dict[int, list[psutil.Process]] = {}
    for process in psutil.process_iter(["ppid"]):
        children.setdefault(process.info["ppid"], []).append(process)
    return children


def tree_rss(process: psutil.Process, children_of: dict[int, list[psutil.Process]] | None = None,
             ) -> tuple[int, list[psutil.Process]]:
    """RSS in bytes of ``process`` and all its descendants, summed, and those descendants.

    ``children_of`` is a :func:`children_map` to find them in, else they are looked up. Processes
    that end while they are being read are left out."""
    try:
        total = process.memory_info().rss
        if children_of is None:
            children = process.children(recursive=True)
        else:
            children, todo, seen = [], [process.pid], {process.pid}
            while todo:
                for child in children_of.get(todo.pop(), ()):
                    if child.pid not in seen:
                        seen.add(child.pid)
                        children.append(child)
                        todo.append(child.pid)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return 0, []
    for child in children:
        try:
            total += child.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return total, children


class MemoryWatcher:
    """Samples the process trees of the calls it is told about, records each call's peak, and calls
    ``on_over(token, limit, peak, descendants)`` once for a call over its limit. ``token`` is
    whatever the executor identifies the call by (its worker)."""

    def __init__(self, on_over: OnOver) -> None:
        self._on_over = on_over
        self._lock = threading.Condition()
        self._watched: dict[Any, _Watched] = {}
        self._closed = False
        self._thread: threading.Thread | None = None
        #: the time.monotonic() the thread sleeps until (infinity: until told), so that watch wakes
        #: it only when a new call is due before that
        self._sleeping_until = 0.0

    def watch(self, token: Any, pid: int, limit: int | None) -> None:
        """Start watching the call run by process ``pid`` (its worker)."""
        now = time.monotonic()
        with self._lock:
            first = now + (LIMITED_INTERVAL if limit else UNLIMITED_INTERVAL)
            self._watched[token] = _Watched(pid, limit, first)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="nbflow-memory-watcher", daemon=True)
                self._thread.start()
            elif first < self._sleeping_until:
                self._lock.notify()  # it sleeps past this call's first sample (or with nothing to watch)

    def forget(self, token: Any) -> int:
        """Stop watching ``token``'s call; the peak sampled for it (0 if it was never sampled)."""
        with self._lock:
            watched = self._watched.pop(token, None)
        return watched.peak if watched is not None else 0

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._watched.clear()
            self._lock.notify()

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._closed:
                    now = time.monotonic()
                    due = [(t, w) for t, w in self._watched.items() if w.next_at <= now and not w.reported]
                    if due:
                        break
                    pending = [w.next_at for w in self._watched.values() if not w.reported]
                    self._sleeping_until = min(pending) if pending else float("inf")
                    self._lock.wait(max(0.0, self._sleeping_until - now) if pending else None)
                self._sleeping_until = 0.0
                if self._closed:
                    return
            children_of = children_map() if len(due) > 1 else None
            for token, watched in due:
                self._sample(token, watched, children_of)

    def _sample(self, token: Any, watched: _Watched, children_of: dict[int, list[psutil.Process]] | None) -> None:
        with self._lock:  # first: a call whose process cannot be read must not be looked at again at once
            watched.next_at = time.monotonic() + (LIMITED_INTERVAL if watched.limit else UNLIMITED_INTERVAL)
        if watched.process is None:
            try:
                watched.process = psutil.Process(watched.pid)
            except psutil.Error:
                return
        total, tree = tree_rss(watched.process, children_of)
        over = False
        with self._lock:
            if self._watched.get(token) is not watched:
                return  # the call ended while it was being sampled
            watched.peak = max(watched.peak, total)
            if watched.limit and total > watched.limit:
                watched.reported = over = True
        if over:
            assert watched.limit is not None
            try:
                self._on_over(token, watched.limit, total, tree)
            except Exception:
                import logging

                logging.getLogger("nbflow.executors").exception("stopping a call over its memory limit failed")
