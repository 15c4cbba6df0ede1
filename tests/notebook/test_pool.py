"""call_in_own_loop: the event loop it makes for jupyter_client is its own, the caller's stays."""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from nbflow.notebook.pool import call_in_own_loop


def _uses_a_loop() -> str:
    from jupyter_core.utils import ensure_event_loop

    return "ran on a loop" if not ensure_event_loop().is_closed() else "no loop"


def _with_own_loop() -> tuple[str, asyncio.AbstractEventLoop, asyncio.AbstractEventLoop]:
    mine = asyncio.new_event_loop()
    asyncio.set_event_loop(mine)
    try:
        answer = call_in_own_loop(_uses_a_loop)
        return answer, mine, asyncio.get_event_loop()
    finally:
        asyncio.set_event_loop(None)
        mine.close()


def test_the_callers_event_loop_is_still_its_loop_afterwards() -> None:
    """A thread with a loop of its own (a Jupyter server's main thread, a test harness) keeps it:
    clearing it left later tornado calls in that thread with "There is no current event loop"."""
    with ThreadPoolExecutor(1) as pool:
        answer, mine, after = pool.submit(_with_own_loop).result()
    assert answer == "ran on a loop"
    assert after is mine


def test_a_thread_without_a_loop_is_left_without_one() -> None:
    def run() -> object:
        call_in_own_loop(_uses_a_loop)
        return asyncio.get_event_loop_policy()._local._loop  # type: ignore[attr-defined]

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(run).result() is None


def test_a_spare_kernel_that_died_while_it_waited_is_replaced_not_handed_out() -> None:
    import signal
    import time

    from nbflow.notebook.pool import KernelPool

    pool = KernelPool(size=1, startup_timeout=30)
    try:
        pool.warm("python3", wait=True)
        claim = pool.claim("python3")
        spare = claim._future.result()  # type: ignore[union-attr]
        os.kill(spare.provisioner.process.pid, signal.SIGKILL)
        spare.provisioner.process.wait()
        started = time.monotonic()
        km, source = claim.take()
        assert km is not spare and source == "cold"
        assert km.provisioner.process.poll() is None
        assert time.monotonic() - started < 25  # a fresh start, not the dead one's wait for an answer
        from nbflow.notebook.pool import discard

        discard(km, now=True)
    finally:
        pool.shutdown()


def test_notebook_tasks_run_again_and_again_in_the_same_worker_process(nbflow_home: Path, tmp_path: Path) -> None:
    """A worker process ends whatever a call started when the call ends: a spare kernel started
    there for the next notebook was dead when taken, and the next notebook task on that worker
    waited out the startup timeout and failed."""
    import nbformat
    from nbformat import v4

    from nbflow import DAG
    from nbflow.engine.runs import run_dag
    from nbflow.executors import get_executor
    from nbflow.operators import NotebookOperator

    path = tmp_path / "double.ipynb"
    nb = v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}), v4.new_code_cell("print(x * 2)")]
    nbformat.write(nb, path)
    with DAG("notebook_again", timezone="UTC") as dag:
        NotebookOperator(task_id="report", notebook=str(path), execution_timeout=40)
    workers = get_executor("process", 1)  # one worker: every run's task lands on it
    try:
        for _ in range(3):
            run = run_dag(dag, executor=workers, run_type="manual")
            assert run.state == "success", run.errors
    finally:
        workers.shutdown()


def test_a_taken_kernels_replacement_starts_when_its_run_gives_it_back() -> None:
    """Not together with the run: a kernel's start, begun with it, slowed a short notebook's run
    on two cores by half."""
    from nbflow.notebook.pool import KernelPool

    pool = KernelPool(size=1, startup_timeout=30)
    try:
        pool.warm("python3", wait=True)
        km, source = pool.claim("python3").take()
        assert source == "warm"
        assert len(pool._starting["python3"]) == 0  # nothing starts beside the run's first cells
        pool.release(km, "python3")
        assert len(pool._starting["python3"]) == 1
        assert "python3" not in pool._refills
    finally:
        pool.shutdown()


def test_a_long_run_has_its_kernels_replacement_started_before_it_ends() -> None:
    """So that the next task of a chain still finds a kernel ready when the run ends."""
    from nbflow.notebook.pool import REFILL_DELAY, KernelPool, discard

    pool = KernelPool(size=1, startup_timeout=30)
    try:
        pool.warm("python3", wait=True)
        km, _ = pool.claim("python3").take()
        timer = pool._refills["python3"]
        assert timer.interval == REFILL_DELAY
        timer.join()  # the run goes on past the delay
        assert len(pool._starting["python3"]) == 1
        discard(km, now=True)
    finally:
        pool.shutdown()


def test_a_claim_that_finds_no_kernel_ready_starts_its_own_and_a_spare_at_once() -> None:
    from nbflow.notebook.pool import KernelPool

    pool = KernelPool(size=1, startup_timeout=30)
    try:
        claim = pool.claim("python3")
        assert claim._source == "cold"
        assert len(pool._starting["python3"]) == 1 and "python3" not in pool._refills
        claim.drop()
    finally:
        pool.shutdown()
