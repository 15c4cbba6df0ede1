"""Memory limits on real worker processes: a call over its limit is killed with its process tree and
reported as MemoryLimitError naming the peak, the pool goes on, and every outcome carries its peak."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import cloudpickle
import psutil
import pytest

from nbflow.errors import MemoryLimitError
from nbflow.executors import Outcome, get_executor
from nbflow.executors.memwatch import UNLIMITED_INTERVAL, tree_rss

cloudpickle.register_pickle_by_value(sys.modules[__name__])

MiB = 1024 * 1024
LIMIT = 300 * 1000 * 1000  # "300MB"


class Outcomes:
    def __init__(self) -> None:
        self.items: list[Outcome] = []
        self._cond = threading.Condition()

    def __call__(self, outcome: Outcome) -> None:
        with self._cond:
            self.items.append(outcome)
            self._cond.notify_all()

    def wait(self, count: int, timeout: float = 30.0) -> dict[Any, Outcome]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.items) >= count, timeout), self.items
            return {o.key: o for o in self.items}


def allocate(megabytes: int, hold: float) -> int:
    data = bytearray(megabytes * MiB)
    # a large zeroed block comes from mmap, whose pages are not resident until written: write one
    # byte a page so that all of it counts
    data[::4096] = b"\x01" * len(range(0, len(data), 4096))
    time.sleep(hold)
    return len(data)


def child_allocates(megabytes: int, pid_file: str) -> int:
    code = f"import time; data = bytearray({megabytes} * {MiB}); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code])
    Path(pid_file).write_text(str(child.pid))
    child.wait()
    return child.returncode


def child_in_own_session(megabytes: int, pid_file: str) -> int:
    code = f"import time; data = bytearray({megabytes} * {MiB}); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    Path(pid_file).write_text(str(child.pid))
    child.wait()
    return child.returncode


def small() -> int:
    return os.getpid()


def _gone(pid: int, within: float = 10.0) -> bool:
    """Whether ``pid`` ends (or is a zombie) within ``within`` seconds: SIGKILL takes a moment."""
    deadline = time.monotonic() + within
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


@pytest.fixture
def pool() -> Any:
    outcomes = Outcomes()
    executor = get_executor("process", 2)
    executor.start(outcomes)
    yield executor, outcomes
    executor.shutdown(wait=False)


def test_a_call_over_its_limit_is_killed_with_memory_limit_error_and_the_next_call_runs(pool: Any) -> None:
    executor, outcomes = pool
    executor.submit("hog", allocate, (500, 30), memory_limit=LIMIT)
    hog = outcomes.wait(1)["hog"]
    assert not hog.ok and isinstance(hog.error, MemoryLimitError), hog
    assert hog.error.limit == LIMIT and hog.error.peak is not None and hog.error.peak > LIMIT
    assert hog.peak_rss == hog.error.peak
    assert f"used {hog.error.peak / MiB:.0f} MiB" in str(hog.error) and "memory_limit of 286 MiB" in str(hog.error)
    assert hog.ended_at - hog.started_at < 20  # stopped, not waited out
    assert _gone(hog.pid)
    executor.submit("next", small)
    after = outcomes.wait(2)["next"]
    assert after.ok and after.value != hog.pid


def test_memory_of_a_child_process_counts_and_the_child_is_killed(pool: Any, tmp_path: Path) -> None:
    executor, outcomes = pool
    pid_file = tmp_path / "child.pid"
    executor.submit("parent", child_allocates, (400, str(pid_file)), memory_limit=LIMIT)
    parent = outcomes.wait(1)["parent"]
    assert isinstance(parent.error, MemoryLimitError), parent
    # the worker itself holds about 20 MiB: only the child's memory can take the tree over the limit
    assert parent.peak_rss is not None and parent.peak_rss > LIMIT
    assert _gone(int(pid_file.read_text()))


def test_a_child_in_a_session_of_its_own_is_counted_and_killed(pool: Any, tmp_path: Path) -> None:
    executor, outcomes = pool
    pid_file = tmp_path / "child.pid"
    executor.submit("parent", child_in_own_session, (400, str(pid_file)), memory_limit=LIMIT)
    parent = outcomes.wait(1)["parent"]
    assert isinstance(parent.error, MemoryLimitError), parent
    assert _gone(int(pid_file.read_text()))


def test_every_outcome_carries_its_peak_and_a_call_under_its_limit_succeeds(pool: Any) -> None:
    executor, outcomes = pool
    executor.submit("small", small)  # alone first: a worker that ran the big call next could hold its memory
    got = outcomes.wait(1)
    # a worker's RSS starts at what it shares with the process that made it (much, in a test run):
    # the small call's peak is that base, and the big call's is the base plus what it allocated
    assert got["small"].ok and 0 < got["small"].peak_rss
    executor.submit("under", allocate, (150, 0.3), memory_limit=LIMIT)
    got = outcomes.wait(2)
    # the worker's own high-water mark: 150 MiB held for 0.3 s is seen even between samples (the
    # process held at least that much, whatever it shared with its parent)
    assert got["under"].ok and got["under"].peak_rss >= max(150 * MiB, got["small"].peak_rss)


def test_an_unlimited_long_call_is_sampled_for_its_tree(pool: Any, tmp_path: Path) -> None:
    executor, outcomes = pool

    def child_holds() -> int:
        code = f"import time; data = bytearray(200 * {MiB}); time.sleep(1.6)"
        return subprocess.run([sys.executable, "-c", code], check=True).returncode

    executor.submit("first", small)
    outcomes.wait(1)
    # what is waited for is the watcher having nothing left to look at: it then sleeps until told
    time.sleep(UNLIMITED_INTERVAL + 0.3)
    executor.submit("tree", child_holds)
    got = outcomes.wait(2)["tree"]
    assert got.ok and got.peak_rss >= 200 * MiB, got.peak_rss


@pytest.mark.parametrize("name", ["inline", "thread"])
def test_in_process_executors_refuse_a_memory_limit(name: str) -> None:
    outcomes = Outcomes()
    executor = get_executor(name, 1)
    executor.start(outcomes)
    ran: list[int] = []
    executor.submit("limited", ran.append, (1,), memory_limit=LIMIT)
    got = outcomes.wait(1)["limited"]
    executor.shutdown()
    assert not ran and isinstance(got.error, MemoryLimitError)
    assert f"the {name} executor cannot enforce" in str(got.error) and 'executor = "process"' in str(got.error)


def test_tree_rss_sums_a_process_and_its_children() -> None:
    child = subprocess.Popen([sys.executable, "-c", f"data = bytearray(100 * {MiB}); input()"],
                             stdin=subprocess.PIPE)
    try:
        me = psutil.Process()
        deadline = time.monotonic() + 10
        while psutil.Process(child.pid).memory_info().rss < 100 * MiB and time.monotonic() < deadline:
            time.sleep(0.02)
        total, tree = tree_rss(me)
        assert child.pid in [p.pid for p in tree]
        assert total >= me.memory_info().rss + 100 * MiB - 5 * MiB
    finally:
        child.kill()
        child.communicate()


def test_tree_rss_from_a_shared_map_of_children_finds_the_same_tree() -> None:
    from nbflow.executors.memwatch import children_map

    child = subprocess.Popen([sys.executable, "-c", "import subprocess, sys; subprocess.run([sys.executable, '-c', 'input()'])"],
                             stdin=subprocess.PIPE)
    try:
        me = psutil.Process()
        deadline = time.monotonic() + 10
        while len(me.children(recursive=True)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        looked_up = sorted(p.pid for p in tree_rss(me)[1])
        shared = sorted(p.pid for p in tree_rss(me, children_map())[1])
        assert len(looked_up) >= 2 and shared == looked_up
    finally:
        child.kill()
        child.communicate()
        for left in psutil.Process().children(recursive=True):
            left.kill()
