"""The executor contract, run against every executor, then what only one executor promises."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from waiting import wait_for

from nbflow.errors import (
    ConfigError,
    OutputNotSerializableError,
    RemoteTaskError,
    TaskTimeoutError,
    WorkerLostError,
)
from nbflow.executors import EXECUTORS, Executor, Outcome, get_executor

# The helpers below travel to worker processes by value, as a notebook cell's functions do; so a
# worker never imports this module (nor pytest), and starts as fast as it does for a user.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


class Collector:
    """An on_done callback that remembers every outcome and lets a test wait for them."""

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []
        self.arrived: list[float] = []
        self._cond = threading.Condition()

    def __call__(self, outcome: Outcome) -> None:
        with self._cond:
            self.outcomes.append(outcome)
            self.arrived.append(time.monotonic())
            self._cond.notify_all()

    def wait(self, count: int, timeout: float = 10.0) -> list[Outcome]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.outcomes) >= count, timeout):
                raise AssertionError(f"got {len(self.outcomes)} outcomes, expected {count}: {self.outcomes}")
            return list(self.outcomes)

    def by_key(self) -> dict[Any, Outcome]:
        with self._cond:
            return {outcome.key: outcome for outcome in self.outcomes}


@pytest.fixture(params=["inline", "thread", "process"])
def executor(request: pytest.FixtureRequest) -> Iterator[tuple[Executor, Collector]]:
    pool = get_executor(request.param, 2)
    collector = Collector()
    pool.start(collector)
    yield pool, collector
    pool.shutdown(wait=False)


@pytest.fixture
def make() -> Iterator[Any]:
    """make(name, parallelism) -> (executor, collector), shut down after the test."""
    made: list[Executor] = []

    def _make(name: str, parallelism: int = 2) -> tuple[Executor, Collector]:
        pool = get_executor(name, parallelism)
        collector = Collector()
        pool.start(collector)
        made.append(pool)
        return pool, collector

    yield _make
    for pool in made:
        pool.shutdown(wait=False)


# -- helpers that run inside the executors ----------------------------------------------------------

class Boom(ValueError):
    pass


class NeedsTwoArgs(Exception):
    """Pickles, but does not unpickle: its __init__ wants two arguments, pickle passes one."""

    def __init__(self, a: str, b: str) -> None:
        super().__init__(f"{a}/{b}")


def add(a: int, b: int) -> int:
    return a + b


def fail(message: str) -> None:
    raise Boom(message)


def nap(seconds: float) -> tuple[float, float]:
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


def whoami() -> int:
    return os.getpid()


def loaded_nbflow_modules() -> list[str]:
    return sorted(name for name in sys.modules if name == "nbflow" or name.startswith("nbflow."))


def return_lock() -> Any:
    return threading.Lock()


def raise_with_lock() -> None:
    error = RuntimeError("holding a lock")
    error.lock = threading.Lock()  # type: ignore[attr-defined]
    raise error


def raise_needs_two_args() -> None:
    raise NeedsTwoArgs("left", "right")


def kill_myself() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(10)


def exit_hard(code: int) -> None:
    os._exit(code)


def sleep_with_child(pid_file: str, seconds: float) -> None:
    child = subprocess.Popen(["sleep", "60"])
    Path(pid_file).write_text(str(child.pid))
    time.sleep(seconds)


def gone(pid: int) -> bool:
    """True when no live process has this pid (a zombie waiting for init counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (OSError, IndexError):
        return True


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    return max(sum(1 for s, e in intervals if s <= start < e) for start, _ in intervals)


# -- the contract, for every executor ---------------------------------------------------------------

def test_returns_the_value(executor: tuple[Executor, Collector]) -> None:
    pool, done = executor
    pool.submit("k", add, (2, 3))
    [outcome] = done.wait(1)
    assert outcome.key == "k" and outcome.ok and outcome.value == 5
    assert outcome.error is None and not outcome.timed_out and outcome.traceback == ""
    assert outcome.started_at is not None and outcome.ended_at is not None
    assert outcome.started_at <= outcome.ended_at <= time.time()
    assert outcome.pid and outcome.hostname
    assert (outcome.pid == os.getpid()) is pool.in_process


def test_an_exception_comes_back_with_its_type_and_traceback(executor: tuple[Executor, Collector]) -> None:
    pool, done = executor
    pool.submit(("tuple", "key"), fail, ("it broke",))
    [outcome] = done.wait(1)
    assert outcome.key == ("tuple", "key") and not outcome.ok and not outcome.timed_out
    assert isinstance(outcome.error, Boom) and str(outcome.error) == "it broke"
    assert "in fail" in outcome.traceback and "Boom: it broke" in outcome.traceback
    assert "nbflow/executors" not in outcome.traceback  # the executor's own frames are not the task's story


def test_calls_respect_parallelism(executor: tuple[Executor, Collector]) -> None:
    pool, done = executor
    # worker processes may still be starting under load: enough calls that the second one is up
    # before the first could have done them all
    calls = 5 if pool.in_process else 8
    for i in range(calls):
        pool.submit(i, nap, (0.25 if pool.name != "inline" else 0.02,))
    outcomes = done.wait(calls, timeout=15)
    assert all(outcome.ok for outcome in outcomes), outcomes
    overlap = max_overlap([outcome.value for outcome in outcomes])
    assert overlap == (1 if pool.name == "inline" else 2)


def test_free_slots(executor: tuple[Executor, Collector]) -> None:
    pool, done = executor
    assert pool.free_slots == pool.parallelism == (1 if pool.name == "inline" else 2)
    pool.submit("a", nap, (0.3,))
    if pool.name != "inline":
        pool.submit("b", nap, (0.3,))
        pool.submit("c", nap, (0.3,))  # queued
        assert pool.free_slots == 0
    done.wait(1 if pool.name == "inline" else 3)
    assert pool.free_slots == pool.parallelism
    pool.shutdown()
    assert pool.free_slots == 0


def test_shutdown_waits_for_calls_and_is_idempotent(executor: tuple[Executor, Collector]) -> None:
    pool, done = executor
    for i in range(3):
        pool.submit(i, nap, (0.1,))
    pool.shutdown(wait=True)
    assert sorted(done.by_key()) == [0, 1, 2] and len(done.outcomes) == 3
    pool.shutdown(wait=True)
    pool.shutdown(wait=False)
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit("late", add, (1, 2))


def test_context_manager_shuts_down(executor: tuple[Executor, Collector]) -> None:
    pool, done = executor
    with pool as same:
        assert same is pool
        same.submit("x", add, (1, 1))
    assert done.wait(1)[0].value == 2
    assert pool.free_slots == 0


def test_closures_and_lambdas_travel(executor: tuple[Executor, Collector]) -> None:
    pool, done = executor
    base = 40

    def closure(x: int) -> int:
        return base + x

    pool.submit("closure", closure, (2,))
    pool.submit("lambda", lambda s: s.upper(), ("hi",))
    done.wait(2)
    outcomes = done.by_key()
    assert outcomes["closure"].value == 42 and outcomes["lambda"].value == "HI"


def test_each_call_is_reported_exactly_once(executor: tuple[Executor, Collector]) -> None:
    pool, done = executor
    for i in range(60):
        pool.submit(i, add, (i, 1))
    done.wait(60)
    time.sleep(0.05)
    assert len(done.outcomes) == 60
    assert {key: outcome.value for key, outcome in done.by_key().items()} == {i: i + 1 for i in range(60)}


def test_on_done_may_submit_more(executor: tuple[Executor, Collector]) -> None:
    pool, done = executor
    seen: list[Outcome] = []
    finished = threading.Event()

    def chain(outcome: Outcome) -> None:
        seen.append(outcome)
        if outcome.key < 3:
            pool.submit(outcome.key + 1, add, (outcome.value, 1))
        else:
            finished.set()

    pool.start(chain)
    pool.submit(0, add, (0, 0))
    assert finished.wait(10)
    assert [o.value for o in seen] == [0, 1, 2, 3]


def test_a_failing_callback_does_not_break_the_executor(executor: tuple[Executor, Collector]) -> None:
    pool, done = executor
    calls = []

    def flaky(outcome: Outcome) -> None:
        calls.append(outcome)
        if len(calls) == 1:
            raise RuntimeError("callback bug")
        done(outcome)

    pool.start(flaky)
    pool.submit(1, add, (1, 1))
    deadline = time.monotonic() + 10
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    pool.submit(2, add, (2, 2))
    assert done.wait(1)[0].value == 4


# -- get_executor and construction -------------------------------------------------------------------

def test_get_executor_knows_the_four() -> None:
    assert set(EXECUTORS) == {"inline", "thread", "process", "dask"}
    for name in EXECUTORS:
        pool = get_executor(name, 3)  # builds nothing heavy: no pool, process or cluster yet
        assert pool.name == name and isinstance(pool, Executor)
        assert pool.in_process is (name not in ("process", "dask"))
        pool.shutdown()


def test_unknown_executor_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="inline, thread, process"):
        get_executor("celery", 2)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_parallelism_must_be_positive(bad: Any) -> None:
    with pytest.raises(ConfigError, match="parallelism"):
        get_executor("thread", bad)


def test_submit_before_start_is_a_clear_error() -> None:
    pool = get_executor("thread", 1)
    with pytest.raises(RuntimeError, match="start"):
        pool.submit("k", add, (1, 2))


# -- inline ------------------------------------------------------------------------------------------

def test_inline_runs_inside_submit(make: Any) -> None:
    pool, done = make("inline")
    pool.submit("k", threading.get_ident)
    assert done.outcomes[0].value == threading.get_ident()


def test_inline_timeout_is_checked_after_the_call(make: Any) -> None:
    pool, done = make("inline")
    pool.submit("slow", nap, (0.1,), timeout=0.02)
    pool.submit("quick", nap, (0.0,), timeout=5)
    slow, quick = done.outcomes
    assert slow.timed_out and not slow.ok and slow.value is None
    assert isinstance(slow.error, TaskTimeoutError) and slow.error.timeout == 0.02
    assert quick.ok and not quick.timed_out


# -- thread ------------------------------------------------------------------------------------------

def test_thread_timeout_reports_at_the_deadline_and_drops_the_late_result(make: Any) -> None:
    pool, done = make("thread", 1)
    release, finished = threading.Event(), threading.Event()

    def stuck() -> str:
        release.wait(10)
        finished.set()
        return "late"

    t0 = time.monotonic()
    pool.submit("stuck", stuck, timeout=0.2)
    [outcome] = done.wait(1)
    assert 0.15 <= done.arrived[0] - t0 < 1.0
    assert outcome.timed_out and not outcome.ok and outcome.value is None
    assert isinstance(outcome.error, TaskTimeoutError) and outcome.error.timeout == 0.2
    assert "in stuck" in outcome.traceback  # where the call hung
    # the slot is free again although the stray thread still runs
    assert pool.free_slots == 1
    pool.submit("next", add, (1, 2))
    assert done.wait(2)[1].value == 3 and not finished.is_set()
    release.set()
    assert finished.wait(5)
    time.sleep(0.1)
    assert [o.key for o in done.outcomes] == ["stuck", "next"]


def test_thread_timeout_of_a_quick_call_does_not_fire(make: Any) -> None:
    pool, done = make("thread", 2)
    for i in range(20):
        pool.submit(i, add, (i, 0), timeout=0.3)
    done.wait(20)
    time.sleep(0.4)
    assert len(done.outcomes) == 20 and all(o.ok for o in done.outcomes)


def test_thread_many_deadlines_one_watchdog(make: Any) -> None:
    pool, done = make("thread", 4)
    before = threading.active_count()
    for i in range(4):
        pool.submit(i, nap, (0.5,), timeout=0.1 + 0.05 * i)
    outcomes = done.wait(4, timeout=5)
    assert all(o.timed_out for o in outcomes)
    assert [o.key for o in outcomes] == [0, 1, 2, 3]
    assert threading.active_count() - before <= 4 + 1 + 4  # pool, watchdog, the replacements at most


def test_thread_shutdown_without_waiting_reports_queued_calls(make: Any) -> None:
    pool, done = make("thread", 1)
    pool.submit("running", nap, (0.2,))
    pool.submit("queued", nap, (0.2,))
    time.sleep(0.05)
    pool.shutdown(wait=False)
    done.wait(2)
    outcomes = done.by_key()
    assert isinstance(outcomes["queued"].error, WorkerLostError)
    assert outcomes["running"].ok


# -- process -----------------------------------------------------------------------------------------

def test_process_workers_persist_and_import_no_nbflow(make: Any) -> None:
    pool, done = make("process", 2)
    pool.submit(1, whoami)
    done.wait(1)
    pool.submit(2, whoami)
    pool.submit(3, loaded_nbflow_modules)
    done.wait(3)
    outcomes = done.by_key()
    assert outcomes[1].value == outcomes[2].value == outcomes[1].pid != os.getpid()
    assert outcomes[3].value == []


def jsonschema_grammar_loaded() -> tuple[bool, bool]:
    """Whether importing jsonschema loaded rfc3987_syntax, and whether jsonschema still validates."""
    import jsonschema

    try:
        jsonschema.validate(3, {"type": "string"})
    except jsonschema.ValidationError:
        works = True
    else:
        works = False
    return sys.modules.get("rfc3987_syntax") is not None, works


def test_process_workers_do_without_costly_optional_imports(make: Any) -> None:
    """A notebook task imports jsonschema (papermill → nbformat): in a worker that costs no grammar build."""
    pool, done = make("process", 1)
    pool.submit(1, jsonschema_grammar_loaded)
    (outcome,) = done.wait(1, timeout=60)
    assert outcome.ok, outcome.error
    assert outcome.value == (False, True)


def test_process_timeout_kills_the_worker_and_its_children(make: Any, tmp_path: Path) -> None:
    pool, done = make("process", 1)
    pool.submit("warm", whoami)
    done.wait(1)
    pid_file = tmp_path / "child.pid"
    t0 = time.monotonic()
    pool.submit("slow", sleep_with_child, (str(pid_file), 30), timeout=0.5)
    outcome = done.wait(2)[1]
    assert 0.4 <= done.arrived[1] - t0 < 3
    assert outcome.timed_out and not outcome.ok and isinstance(outcome.error, TaskTimeoutError)
    assert gone(outcome.pid)
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 3
    while not gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert gone(grandchild)
    pool.submit("after", whoami)
    after = done.wait(3)[2]
    assert after.ok and after.value != outcome.pid


def test_process_worker_killed_mid_call_is_reported_and_replaced(make: Any) -> None:
    pool, done = make("process", 1)
    pool.submit("killed", kill_myself)
    pool.submit("exited", exit_hard, (3,))
    pool.submit("after", whoami)
    done.wait(3)
    outcomes = done.by_key()
    killed, exited = outcomes["killed"], outcomes["exited"]
    assert isinstance(killed.error, WorkerLostError) and not killed.ok and not killed.timed_out
    assert "killed by SIGKILL, signal 9" in str(killed.error)
    assert isinstance(exited.error, WorkerLostError) and "exited with status 3" in str(exited.error)
    assert outcomes["after"].ok and outcomes["after"].value not in (killed.pid, exited.pid)


def test_process_unpicklable_return_value_is_a_clear_error(make: Any) -> None:
    pool, done = make("process", 1)
    pool.submit("lock", return_lock)
    [outcome] = done.wait(1)
    assert not outcome.ok and isinstance(outcome.error, OutputNotSerializableError)
    assert "_thread.lock" in str(outcome.error) and outcome.error.type_name == "_thread.lock"


def test_process_unpicklable_exceptions_arrive_as_stand_ins(make: Any) -> None:
    pool, done = make("process", 1)
    pool.submit("lock", raise_with_lock)
    pool.submit("two", raise_needs_two_args)
    done.wait(2)
    for key, type_name, message in [("lock", "RuntimeError", "holding a lock"), ("two", "NeedsTwoArgs", "left/right")]:
        outcome = done.by_key()[key]
        assert isinstance(outcome.error, RemoteTaskError), outcome.error
        assert outcome.error.type_name.endswith(type_name) and outcome.error.message == message
        assert f"{message}" in str(outcome.error) and "Traceback" in outcome.traceback
        assert outcome.traceback == outcome.error.traceback_text


def test_process_unpicklable_call_is_reported_not_raised(make: Any) -> None:
    pool, done = make("process", 1)
    lock = threading.Lock()
    pool.submit("bad", lambda: lock.locked())
    [outcome] = done.wait(1)
    assert not outcome.ok and isinstance(outcome.error, TypeError)
    assert "does not pickle" in str(outcome.error) or "do not pickle" in str(outcome.error)


def test_process_shutdown_without_waiting_kills_running_calls(make: Any) -> None:
    pool, done = make("process", 1)
    pool.submit("warm", whoami)
    done.wait(1)
    pool.submit("running", nap, (30,))
    pool.submit("queued", nap, (30,))
    time.sleep(0.1)
    t0 = time.monotonic()
    pool.shutdown(wait=False)
    assert time.monotonic() - t0 < 0.5
    done.wait(3)
    outcomes = done.by_key()
    assert isinstance(outcomes["running"].error, WorkerLostError)
    assert "shut down" in str(outcomes["running"].error)
    assert isinstance(outcomes["queued"].error, WorkerLostError)
    deadline = time.monotonic() + 3
    while not gone(outcomes["warm"].value) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert gone(outcomes["warm"].value)


def test_a_persistent_process_worker_answers_many_calls_in_turn(make: Any) -> None:
    # the cost of a round trip is measured by benchmarks/run.py (the process executor rows)
    pool, done = make("process", 1)
    pool.submit("warm", add, (0, 0))
    done.wait(1)
    calls = 200
    for i in range(calls):
        pool.submit(i, add, (i, 0))
        done.wait(i + 2)
    outcomes = done.by_key()
    assert [outcomes[i].value for i in range(calls)] == list(range(calls))


def test_shutdown_from_on_done_does_not_deadlock(executor: tuple[Executor, Collector]) -> None:
    pool, done = executor
    finished = threading.Event()

    def stop_on_first(outcome: Outcome) -> None:
        done(outcome)
        if outcome.key == 0:
            pool.shutdown(wait=True)
            finished.set()

    pool.start(stop_on_first)
    calls = 1 if pool.name == "inline" else 3  # inline has finished each call when submit returns
    for i in range(calls):
        pool.submit(i, nap, (0.05,))
    assert finished.wait(5)
    assert sorted(o.key for o in done.wait(calls)) == list(range(calls))
    assert all(o.ok for o in done.outcomes)


def test_process_idle_worker_killed_from_outside_is_replaced(make: Any) -> None:
    pool, done = make("process", 1)
    pool.submit("first", whoami)
    first = done.wait(1)[0].value
    os.kill(first, signal.SIGKILL)
    time.sleep(0.3)
    pool.submit("second", whoami)
    second = done.wait(2)[1]
    assert second.ok and second.value != first


def test_process_workers_that_cannot_start_fail_the_calls(make: Any, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from nbflow.executors import process

    broken = tmp_path / "broken_worker.py"
    broken.write_text("import sys\nsys.exit(7)\n")
    monkeypatch.setattr(process, "WORKER_SCRIPT", str(broken))
    pool, done = make("process", 1)
    pool.submit("doomed", add, (1, 2))
    [outcome] = done.wait(1)
    # The worker dies before it can report ready: depending on timing the pool sees its exit code
    # or a broken pipe while handing it the call. Either way the call fails as a lost worker.
    assert isinstance(outcome.error, WorkerLostError)
    assert "exited with status 7" in str(outcome.error) or "could not start a worker process" in str(outcome.error)


# -- process: a task cannot take its worker's neighbours, or the caller, down with it ----------------

def segfault() -> None:
    import ctypes

    ctypes.string_at(0)


def fork_and_linger(pid_file: str, then: str) -> int:
    """Fork a child that sleeps 300 s holding the worker's socket; then return, exit or fall into
    the worker's own loop (``then`` = "return", "exit" or "fall")."""
    pid = os.fork()
    if pid == 0:
        if then == "fall":
            return -1  # the child returns into the worker's loop, as a careless fork does
        time.sleep(300)
        os._exit(0)
    Path(pid_file).write_text(str(pid))
    if then == "exit":
        os._exit(5)
    return pid


def double_fork_daemon(pid_file: str) -> int:
    """Start a daemon the usual way (fork, setsid, fork): it leaves the worker's session."""
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            # written whole or not at all: the worker may look between the file's creation and its write
            Path(pid_file + ".part").write_text(str(os.getpid()))
            os.replace(pid_file + ".part", pid_file)
            time.sleep(300)
        os._exit(0)
    os.waitpid(pid, 0)
    deadline = time.monotonic() + 5
    while not Path(pid_file).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return int(Path(pid_file).read_text())


# These helpers travel by value, so their own globals die with the call: a leak has to live in a
# module the worker keeps (sys here), as a cache in an imported library does.

def grow_and_fail(megabytes: int) -> None:
    sys.kept_by_test = [b"\x01" * (1024 * 1024) for _ in range(megabytes)]  # type: ignore[attr-defined]
    raise MemoryError(f"gave up after {megabytes} MiB")


def grow_and_keep(megabytes: int) -> int:
    sys.kept_by_test = [b"\x01" * (1024 * 1024) for _ in range(megabytes)]  # type: ignore[attr-defined]
    return os.getpid()


def wait_gone(pid: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return gone(pid)


def test_process_segfault_and_exit_name_what_happened_and_the_pool_goes_on(make: Any) -> None:
    pool, done = make("process", 1)
    pool.submit("segv", segfault)
    pool.submit("exit7", exit_hard, (7,))
    pool.submit("after", whoami)
    done.wait(3)
    outcomes = done.by_key()
    segv, exit7 = outcomes["segv"], outcomes["exit7"]
    assert isinstance(segv.error, WorkerLostError)
    assert f"worker process {segv.pid} killed by SIGSEGV, signal 11" in str(segv.error)
    assert isinstance(exit7.error, WorkerLostError)
    assert f"worker process {exit7.pid} exited with status 7" in str(exit7.error)
    assert outcomes["after"].ok and outcomes["after"].value not in (segv.pid, exit7.pid)


def test_process_a_forked_child_ends_with_its_call(make: Any, tmp_path: Path) -> None:
    pool, done = make("process", 1)
    pid_file = tmp_path / "child.pid"
    pool.submit("fork", fork_and_linger, (str(pid_file), "return"))
    [outcome] = done.wait(1)
    assert outcome.ok, outcome.error
    child = outcome.value
    assert wait_gone(child, 0.5), "the forked child outlived its call"
    pool.submit("after", whoami)
    assert done.wait(2)[1].value == outcome.pid  # the worker itself lives on


def test_process_a_fork_that_falls_into_the_worker_loop_exits_at_once(make: Any, tmp_path: Path) -> None:
    # before: the fork read the next call off the shared socket, and that call never ended
    pool, done = make("process", 1)
    pool.submit("fork", fork_and_linger, (str(tmp_path / "child.pid"), "fall"))
    for i in range(5):
        pool.submit(i, add, (i, 1))
    done.wait(6, timeout=10)
    outcomes = done.by_key()
    assert outcomes["fork"].ok and outcomes["fork"].value > 0
    assert [outcomes[i].value for i in range(5)] == [1, 2, 3, 4, 5]


def test_process_a_worker_that_dies_while_its_fork_holds_the_socket_is_seen(make: Any, tmp_path: Path) -> None:
    # before: the fork kept the socket open, the worker stayed a zombie and the call ran forever
    pool, done = make("process", 1)
    pid_file = tmp_path / "child.pid"
    pool.submit("fork", fork_and_linger, (str(pid_file), "exit"))
    pool.submit("after", whoami)
    done.wait(2, timeout=10)
    outcomes = done.by_key()
    assert isinstance(outcomes["fork"].error, WorkerLostError)
    assert "exited with status 5" in str(outcomes["fork"].error)
    assert wait_gone(int(pid_file.read_text()))
    assert outcomes["after"].ok


def test_process_a_double_forked_daemon_ends_with_its_call(make: Any, tmp_path: Path) -> None:
    pool, done = make("process", 1)
    pool.submit("daemon", double_fork_daemon, (str(tmp_path / "daemon.pid"),))
    [outcome] = done.wait(1)
    assert outcome.ok, outcome.error
    assert wait_gone(outcome.value, 1.0), "a daemon started by the task outlived its call"


def test_process_a_worker_above_its_memory_limit_is_replaced(tmp_path: Path) -> None:
    import psutil

    pool, done = get_executor("process", 1, max_rss_mb=200), Collector()
    pool.start(done)
    try:
        pool.submit("small", grow_and_keep, (10,))
        pool.submit("leak", grow_and_keep, (300,))
        pool.submit("after", whoami)
        done.wait(3)
        outcomes = done.by_key()
        assert outcomes["small"].value == outcomes["leak"].value  # under the limit: kept
        assert outcomes["after"].ok and outcomes["after"].value != outcomes["leak"].value
        assert wait_gone(outcomes["leak"].value)
        assert psutil.Process(outcomes["after"].value).memory_info().rss < 200 * 1024 * 1024
    finally:
        pool.shutdown(wait=False)


def test_process_a_failed_call_that_grew_the_worker_retires_it(make: Any) -> None:
    pool, done = make("process", 1)  # no memory limit: only the failure's growth counts
    pool.submit("first", whoami)
    pool.submit("grow", grow_and_fail, (400,))
    pool.submit("after", whoami)
    done.wait(3)
    outcomes = done.by_key()
    assert isinstance(outcomes["grow"].error, MemoryError) and "gave up after 400 MiB" in str(outcomes["grow"].error)
    assert outcomes["grow"].pid == outcomes["first"].value
    assert outcomes["after"].value != outcomes["first"].value
    assert wait_gone(outcomes["first"].value)


def test_process_memory_limit_is_checked() -> None:
    with pytest.raises(ConfigError, match="worker_max_rss_mb"):
        get_executor("process", 1, max_rss_mb=-1)
    with pytest.raises(TypeError):
        get_executor("thread", 1, max_rss_mb=100)  # an option the executor does not take is refused


@pytest.mark.parametrize(("kind", "setting", "given", "expected"), [
    ("daemon", "auto", None, "process"),
    ("jupyter-server", "auto", None, "process"),
    ("server-run", "", None, "process"),
    ("kernel", "auto", None, "thread"),
    ("backfill", "auto", None, "thread"),
    (None, "auto", None, "thread"),             # run_dag: dag.test(), nbflow dags test
    ("daemon", "thread", None, "thread"),       # the setting wins over the host's default
    ("kernel", "process", None, "process"),
    ("daemon", "auto", "inline", "inline"),     # and the caller's choice (-e) over both
])
def test_each_host_gets_its_default_executor_unless_one_is_chosen(
    tmp_path: Path, kind: str | None, setting: str, given: str | None, expected: str,
) -> None:
    from nbflow.executors import executor_for
    from nbflow.settings import load_settings

    settings = load_settings(env={"NBFLOW_HOME": str(tmp_path), "NBFLOW_EXECUTOR": setting,
                                  "NBFLOW_WORKER_MAX_RSS_MB": "321"})
    pool = executor_for(settings, kind, given)
    try:
        assert pool.name == expected
        if expected == "process":
            assert pool.max_rss_mb == 321  # type: ignore[attr-defined]
    finally:
        pool.shutdown(wait=False)


_HOST_SCRIPT = """
import os, sys, threading, time
from nbflow.executors import get_executor

pids, ran = [], threading.Event()
pool = get_executor("process", 1)
pool.start(lambda outcome: (pids.append(outcome.value), ran.set()))
# submitted from a thread that ends at once: the worker must outlive that thread, not this process
threading.Thread(target=pool.submit, args=("pid", os.getpid)).start()
ran.wait(30)
mark = sys.argv[1]
pool.submit("long", lambda: (open(mark, "w").close(), time.sleep(300)))
print(pids[0], flush=True)
time.sleep(300)
"""


def test_process_workers_die_with_their_host(tmp_path: Path) -> None:
    # a host killed by SIGKILL must not leave a try running on, while another host retries it
    started = tmp_path / "started"
    host = subprocess.Popen([sys.executable, "-c", _HOST_SCRIPT, str(started)], stdout=subprocess.PIPE, text=True)
    try:
        assert host.stdout is not None
        worker = int(host.stdout.readline())
        deadline = time.monotonic() + 10
        while not started.exists() and time.monotonic() < deadline:  # the worker is busy with the long call
            time.sleep(0.01)
        assert started.exists() and not gone(worker)
        host.kill()
        host.wait()
        assert wait_gone(worker), "a worker process outlived its host"
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()
        assert host.stdout is not None
        host.stdout.close()


def test_a_task_shipped_to_a_worker_keeps_its_dag_id() -> None:
    # a notebook task in a worker process builds its artifact path from its DAG's id
    from nbflow import DAG
    from nbflow.operators import EmptyOperator

    with DAG("shipped", schedule=None, start_date="2024-01-01"):
        task = EmptyOperator(task_id="t")
    copy = cloudpickle.loads(cloudpickle.dumps(task))
    assert copy.dag is None and copy.dag_id == "shipped"


def test_process_cancel_stops_a_running_call_and_drops_a_queued_one(make: Any, tmp_path: Path) -> None:
    pool, done = make("process", 1)
    pid_file = tmp_path / "child.pid"
    pool.submit("running", sleep_with_child, (str(pid_file), 30))
    pool.submit("queued", whoami)
    wait_for(pid_file.exists, 30, "the call to start (it writes its child's pid)")
    assert pool.cancel("queued", "stopped: taken over") and pool.cancel("running", "stopped: taken over")
    assert not pool.cancel("nothing", "no such call")
    done.wait(2)
    outcomes = done.by_key()
    for key in ("running", "queued"):
        assert not outcomes[key].ok and isinstance(outcomes[key].error, WorkerLostError)
        assert "stopped: taken over" in str(outcomes[key].error)
    child = int(pid_file.read_text())
    wait_for(lambda: gone(child), 5, "the call's child to go with its worker (SIGKILL lands a moment later)")
    pool.submit("after", add, (2, 3))
    done.wait(3)
    assert done.by_key()["after"].value == 5  # a fresh worker took the killed one's place


def test_threads_cannot_be_cancelled_and_report_when_they_end(make: Any) -> None:
    pool, done = make("thread", 1)
    pool.submit("nap", nap, (0.05,))
    assert pool.cancel("nap", "stopped") is False
    done.wait(1)
    assert done.by_key()["nap"].ok
