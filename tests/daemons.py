"""A real `nbflow scheduler` daemon for tests that watch one from outside: started on a home and a
store of the test's own, with the store opened beside it, and stopped with SIGTERM at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbflow.store import Store
from waiting import wait_for


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    store: Store
    env: dict[str, str]
    log: Path

    def tail(self) -> str:
        return self.log.read_text()[-3000:]

    def latest_run(self, dag_id: str) -> dict[str, Any] | None:
        """The DAG's newest run, None before there is one; AssertionError with the log if the daemon died."""
        if self.process.poll() is not None:
            raise AssertionError(f"the daemon exited with {self.process.returncode}:\n{self.tail()}")
        try:
            runs = self.store.list_runs(dag_id, limit=None)
        except Exception:  # the daemon has not created the tables yet
            return None
        return runs[0] if runs else None

    def finished_run(self, dag_id: str, timeout: float) -> dict[str, Any]:
        return wait_for(lambda: (r := self.latest_run(dag_id)) and r["state"] in ("success", "failed") and r,
                        timeout, f"the run of {dag_id} to finish")


@contextmanager
def scheduler_daemon(home: Path, store_url: str, log: Path, **settings: str) -> Iterator[Daemon]:
    """The daemon with the default executor (no NBFLOW_ variables of the test process), fast heartbeats
    and polls, and ``settings`` as NBFLOW_<NAME> variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBFLOW_")}
    env.update(NBFLOW_HOME=str(home), NBFLOW_DATABASE_URL=store_url, NBFLOW_HEARTBEAT_INTERVAL="0.5",
               NBFLOW_POLL_INTERVAL="0.2")
    env.update({f"NBFLOW_{name.upper()}": value for name, value in settings.items()})
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "nbflow", "scheduler"], env=env,
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    store = None
    try:
        if store_url.startswith("sqlite"):
            wait_for(Path(store_url.removeprefix("sqlite:///")).exists, 30, "the database")
        store = Store(store_url, busy_timeout=10)
        yield Daemon(process, store, env, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if store is not None:
            store.close()
