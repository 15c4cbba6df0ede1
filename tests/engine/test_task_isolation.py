"""Tasks that crash, exit, fork or leak, run by a real ``nbflow scheduler`` daemon with its default
executor: each ends its worker process, never the daemon, and the daemon's memory stays where it was.
"""

from __future__ import annotations

import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Any

import psutil
import pytest
from daemons import scheduler_daemon
from waiting import wait_for


DAG_FILE = '''
import os
import signal
import time
from datetime import timedelta
from pathlib import Path

from nbflow import DAG
from nbflow.operators import PythonOperator

MARKS = Path({marks!r})


def segfault(ti):
    if ti.try_number == 1:
        import ctypes

        ctypes.string_at(0)


def exit_7(ti):
    if ti.try_number == 1:
        os._exit(7)


def sigkill(ti):
    if ti.try_number == 1:
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(30)


def fork_and_linger(ti):
    child = os.fork()
    if child == 0:
        time.sleep(300)
        os._exit(0)
    (MARKS / f"child-{{ti.try_number}}.pid").write_text(str(child))
    if ti.try_number == 1:
        raise RuntimeError("failed after forking a child that sleeps for 300 s")


def child_is_gone(ti):
    # runs after fork_and_linger's last try ended: its children must be gone by now
    for path in MARKS.glob("child-*.pid"):
        pid = int(path.read_text())
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        state = Path(f"/proc/{{pid}}/stat").read_text().rpartition(")")[2].split()[0]
        if state != "Z":
            raise RuntimeError(f"the child {{pid}} forked by fork_and_linger outlived its try")


def allocate_and_fail(ti):
    if ti.try_number == 1:
        data = [b"\\x01" * (1024 * 1024) for _ in range(500)]
        raise ValueError(f"allocated {{len(data)}} MiB and gave up")


def canary():
    return "still here"


with DAG("hostile", schedule="@once", start_date="2024-01-01", timezone="UTC", max_active_tasks=8,
         default_args={{"retries": 1, "retry_delay": timedelta(0)}}) as d:
    for fn in (segfault, exit_7, sigkill, allocate_and_fail, canary):
        PythonOperator(task_id=fn.__name__, python_callable=fn)
    PythonOperator(task_id="fork_and_linger", python_callable=fork_and_linger) >> PythonOperator(
        task_id="child_is_gone", python_callable=child_is_gone)
'''

#: what try 1 of each task must have failed with
FIRST_TRY_ERRORS = {
    "segfault": "WorkerLostError",
    "exit_7": "WorkerLostError",
    "sigkill": "WorkerLostError",
    "fork_and_linger": "failed after forking a child that sleeps for 300 s",
    "allocate_and_fail": "allocated 500 MiB and gave up",
}


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.slow
def test_a_daemon_outlives_tasks_that_crash_exit_fork_or_leak(tmp_path: Path, store_url: str) -> None:
    home, marks = tmp_path / "home", tmp_path / "marks"
    (home / "dags").mkdir(parents=True)
    marks.mkdir()
    (home / "dags" / "hostile.py").write_text(textwrap.dedent(DAG_FILE.format(marks=str(marks))))
    with scheduler_daemon(home, store_url, tmp_path / "daemon.log") as daemon:
        wait_for(lambda: daemon.latest_run("hostile"), 30, "the run")
        baseline = psutil.Process(daemon.process.pid).memory_info().rss
        finished = daemon.finished_run("hostile", 60)
        assert daemon.process.poll() is None, daemon.tail()

        tis = {ti["task_id"]: ti for ti in daemon.store.get_task_instances(finished["id"])}
        assert {t: ti["state"] for t, ti in tis.items()} == dict.fromkeys(
            [*FIRST_TRY_ERRORS, "canary", "child_is_gone"], "success"), [
            (t, (ti["error"] or "")[-400:]) for t, ti in tis.items() if ti["state"] != "success"]
        tries: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
        for row in daemon.store.get_tries(finished["id"]):
            tries[row["task_id"]][row["try_number"]] = row
        for task_id, expected in FIRST_TRY_ERRORS.items():
            assert sorted(tries[task_id]) == [1, 2], (task_id, tries[task_id])
            first, second = tries[task_id][1], tries[task_id][2]
            assert first["state"] in ("failed", "up_for_retry") and expected in (first["error"] or ""), (task_id, first["error"])
            assert second["state"] == "success"
        lost = {t: tries[t][1]["error"] for t in ("segfault", "exit_7", "sigkill")}
        assert f"worker process {tries['segfault'][1]['pid']} killed by SIGSEGV, signal 11" in lost["segfault"]
        assert f"worker process {tries['exit_7'][1]['pid']} exited with status 7" in lost["exit_7"]
        assert "killed by SIGKILL, signal 9" in lost["sigkill"]
        # user code ran in worker processes, never in the daemon
        assert all(row["pid"] and row["pid"] != daemon.process.pid for rows in tries.values() for row in rows.values())
        for path in marks.glob("child-*.pid"):
            assert _gone(int(path.read_text())), f"{path.name}: a forked child outlived its try"
        rss = psutil.Process(daemon.process.pid).memory_info().rss
        assert rss < baseline + 50 * 1024 * 1024, f"the daemon grew from {baseline >> 20} to {rss >> 20} MiB"
        workers = psutil.Process(daemon.process.pid).children(recursive=True)
        assert all(w.memory_info().rss < 400 * 1024 * 1024 for w in workers), "a worker kept 500 MiB"
    assert daemon.process.returncode == 0, daemon.tail()
