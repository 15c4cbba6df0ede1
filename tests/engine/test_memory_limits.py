"""memory_limit in a real ``nbflow scheduler`` daemon: a task that allocates past its limit (itself,
or through a child process) is killed and fails with MemoryLimitError naming the peak, the daemon
lives and the next task runs; every try records its peak memory, shown by ``nbflow tasks``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Any

import psutil
import pytest
from daemons import scheduler_daemon
from waiting import wait_for


DAG_FILE = '''
import subprocess
import sys
import time

from nbflow import DAG
from nbflow.operators import PythonOperator

MiB = 1024 * 1024


def hog():
    data = bytearray(600 * MiB)  # zero-filled: every page is resident
    time.sleep(60)
    return len(data)


def child_hog():
    code = f"import time; data = bytearray(600 * {MiB}); time.sleep(60)"
    return subprocess.run([sys.executable, "-c", code]).returncode


def after():
    return "the next task ran"


def plain():
    data = bytearray(64 * MiB)
    return len(data)


with DAG("memory", schedule="@once", start_date="2024-01-01", timezone="UTC") as d:
    limited = [PythonOperator(task_id="hog", python_callable=hog, memory_limit="300MB"),
               PythonOperator(task_id="child_hog", python_callable=child_hog, memory_limit=300_000_000)]
    limited >> PythonOperator(task_id="after", python_callable=after, trigger_rule="all_done")
    PythonOperator(task_id="plain", python_callable=plain)
'''


@pytest.mark.slow
def test_a_task_over_its_memory_limit_fails_and_the_daemon_and_next_task_go_on(tmp_path: Path, store_url: str) -> None:
    home = tmp_path / "home"
    (home / "dags").mkdir(parents=True)
    (home / "dags" / "memory.py").write_text(textwrap.dedent(DAG_FILE))
    with scheduler_daemon(home, store_url, tmp_path / "daemon.log", min_free_memory="0") as daemon:
        finished = daemon.finished_run("memory", 90)
        assert daemon.process.poll() is None, daemon.tail()
        tries: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in daemon.store.get_tries(finished["id"]):
            tries[row["task_id"]].append(row)
        states = {t: [row["state"] for row in rows] for t, rows in tries.items()}
        assert states == {"hog": ["failed"], "child_hog": ["failed"], "after": ["success"], "plain": ["success"]}, (states, dict(tries), daemon.tail())
        for task_id in ("hog", "child_hog"):
            (row,) = tries[task_id]
            peak = row["peak_rss"]
            assert peak and peak > 300_000_000, (task_id, peak)
            assert "MemoryLimitError" in row["error"] and f"task '{task_id}'" in row["error"], row["error"]
            assert f"used {peak / 2**20:.0f} MiB of memory" in row["error"] and "memory_limit of 286 MiB" in row["error"]
            assert row["duration"] < 30, "the task was stopped, not waited out"
            assert "MemoryLimitError" in Path(row["log_path"]).read_text(), "the task's log says why it ended"
        assert tries["plain"][0]["peak_rss"] > 64 * 2**20, "a normal try records its peak"
        assert tries["after"][0]["peak_rss"] > 0
        # no process of the killed tries is left: the daemon's tree holds only small, idle workers
        workers = psutil.Process(daemon.process.pid).children(recursive=True)
        assert all(w.memory_info().rss < 250 * 2**20 for w in workers), [w.memory_info().rss for w in workers]

        states_out = subprocess.run([sys.executable, "-m", "nbflow", "tasks", "states", "memory"], env=daemon.env,
                                    capture_output=True, text=True, timeout=60)
        assert states_out.returncode == 0, states_out.stderr
        line = next(l for l in states_out.stdout.splitlines() if l.startswith("hog "))
        assert f"{tries['hog'][0]['peak_rss'] / 2**20:.0f} MiB" in line, states_out.stdout
        logs_out = subprocess.run([sys.executable, "-m", "nbflow", "tasks", "logs", "memory", "plain"], env=daemon.env,
                                  capture_output=True, text=True, timeout=60)
        assert "peak memory " in logs_out.stdout, logs_out.stdout
    assert daemon.process.returncode == 0, daemon.tail()


@pytest.fixture
def sqlite_settings(nbflow_home: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    from nbflow.settings import load_settings

    monkeypatch.setenv("NBFLOW_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("NBFLOW_MIN_FREE_MEMORY", "0")
    return load_settings()


@pytest.mark.slow
def test_a_notebook_kernel_over_its_tasks_memory_limit_is_killed(sqlite_settings: Any, tmp_path: Path) -> None:
    """A notebook's cells run in a kernel, a process of their own started by the task: its memory
    counts against the task's limit, and it goes with the task's tree."""
    import nbformat
    from nbformat import v4

    from nbflow import DAG
    from nbflow.engine.runs import run_dag
    from nbflow.operators import NotebookOperator

    notebook = v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                        "language": "python"}})
    notebook.cells = [v4.new_code_cell("import os, time\nopen(PID_FILE, 'w').write(str(os.getpid()))"),
                      v4.new_code_cell("data = bytearray(600 * 1024 * 1024)\ntime.sleep(60)")]
    path, pid_file = tmp_path / "hog.ipynb", tmp_path / "kernel.pid"
    notebook.cells.insert(0, v4.new_code_cell(f"PID_FILE = {str(pid_file)!r}", metadata={"tags": ["parameters"]}))
    nbformat.write(notebook, path)
    with DAG("nb_memory", schedule=None, start_date="2024-01-01", timezone="UTC") as dag:
        NotebookOperator(task_id="hog", notebook=str(path), memory_limit="300MB", execution_timeout=120)
    run = run_dag(dag, settings=sqlite_settings, executor="process")
    ti = run.task_instances["hog"]
    assert ti.state.value == "failed" and ti.duration is not None and ti.duration < 60, (ti.state, ti.duration)
    assert "MemoryLimitError" in (ti.error or "") and "memory_limit of 286 MiB" in (ti.error or ""), ti.error
    kernel = int(pid_file.read_text())

    def kernel_gone() -> bool:
        try:
            return psutil.Process(kernel).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_for(kernel_gone, 10, "the notebook's kernel to be gone")
