"""call_in_own_loop: the event loop it makes for jupyter_client is its own, the caller's stays."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

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
