"""Kernels started when a run is known (``nbflow.notebook.prestart``) and the pool's claims: each
notebook still gets a fresh kernel of its own, and no kernel outlives the run or the command."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import nbformat
import psutil
import pytest
from nbformat import v4

from nbflow import DAG
from nbflow.notebook.pool import KernelPool, default_pool, wait_for_shutdowns
from nbflow.notebook.prestart import kernels_needed, notebook_kernel, prestarted_kernels, runs_here
from nbflow.operators import EmptyOperator, NotebookOperator

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def make_notebook(path: Path, *cells: str, kernelspec: dict[str, str] | None = KERNELSPEC) -> str:
    nb = v4.new_notebook(metadata={"kernelspec": kernelspec} if kernelspec else {})
    nb.cells = [v4.new_code_cell(source) for source in cells]
    nbformat.write(nb, path)
    return str(path)


def kernel_pid(km: object) -> int:
    return int(km.provisioner.pid)  # type: ignore[attr-defined]


def kernels_of(home: Path) -> list[psutil.Process]:
    """Kernel processes started by a command run with ``NBFLOW_HOME=home`` (they inherit its
    environment; each test has its own home)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if "ipykernel_launcher" in (proc.info["cmdline"] or []) and proc.environ().get("NBFLOW_HOME") == str(home):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def test_the_kernels_a_dag_needs_are_read_from_its_notebooks(tmp_path: Path) -> None:
    plain = make_notebook(tmp_path / "plain.ipynb", "x = 1")
    other = make_notebook(tmp_path / "other.ipynb", "x = 1", kernelspec={"name": "julia-1.10", "display_name": "J"})
    bare = make_notebook(tmp_path / "bare.ipynb", "x = 1", kernelspec=None)
    (tmp_path / "broken.ipynb").write_text("{not json")
    with DAG("kinds", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
        NotebookOperator(task_id="a", notebook=plain)
        NotebookOperator(task_id="b", notebook=plain)
        NotebookOperator(task_id="c", notebook=other)
        NotebookOperator(task_id="d", notebook=other, kernel_name="python3")
        NotebookOperator(task_id="e", notebook=bare)
        NotebookOperator(task_id="f", notebook=str(tmp_path / "{{ ds }}.ipynb"))
        EmptyOperator(task_id="g")
    assert notebook_kernel(other) == "julia-1.10"
    assert notebook_kernel(bare) is None and notebook_kernel(tmp_path / "broken.ipynb") is None
    assert notebook_kernel(tmp_path / "missing.ipynb") is None
    # a templated path is not known before the run; a notebook naming no kernel runs on python3
    assert kernels_needed(dag) == {"python3": 4, "julia-1.10": 1}
    assert runs_here("thread") and runs_here("inline") and runs_here(None)
    assert not runs_here("process") and not runs_here("dask")


def test_a_dag_without_notebook_tasks_or_running_elsewhere_starts_no_kernel(tmp_path: Path) -> None:
    with DAG("plain", schedule=None, start_date=datetime(2024, 1, 1)) as plain:
        EmptyOperator(task_id="a")
    with prestarted_kernels(plain) as pool:
        assert pool is None
    with DAG("elsewhere", schedule=None, start_date=datetime(2024, 1, 1)) as elsewhere:
        NotebookOperator(task_id="nb", notebook=make_notebook(tmp_path / "n.ipynb", "x = 1"))
    with prestarted_kernels(elsewhere, executor="process") as pool:
        assert pool is None


def test_kernels_started_for_a_run_are_stopped_when_it_ends_before_using_them(tmp_path: Path) -> None:
    path = make_notebook(tmp_path / "n.ipynb", "x = 1")
    with DAG("unused", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
        NotebookOperator(task_id="a", notebook=path) >> NotebookOperator(task_id="b", notebook=path)
    before = default_pool()
    with prestarted_kernels(dag, executor="thread") as pool:
        assert pool is not None and default_pool() is pool  # what run_notebook takes its kernel from
        pool.warm("python3", wait=True)
        pids = [kernel_pid(future.result()) for future in pool._starting["python3"]]
        assert len(pids) == 2 and all(psutil.pid_exists(pid) for pid in pids)
        # the run failed here, before its notebook tasks
    assert default_pool() is before
    gone, alive = psutil.wait_procs([psutil.Process(pid) for pid in pids if psutil.pid_exists(pid)], timeout=30)
    assert not alive


def test_a_claim_given_up_stops_its_kernel_even_while_it_starts() -> None:
    pool = KernelPool(size=0)
    try:
        claim = pool.claim("python3")
        claim.drop()  # most likely still starting: stopped once it is up
        km, source = pool.claim("python3").take()
        assert source == "cold" and km.is_alive()
        pid = kernel_pid(km)
        pool.release(km, "python3")
        gone, alive = psutil.wait_procs([psutil.Process(pid)], timeout=30)
        assert not alive
        wait_for_shutdowns()
        # size 0 keeps no spare kernel starting after the last one was taken
        assert not pool._starting["python3"]
    finally:
        pool.shutdown()


CHAIN = '''
from datetime import datetime
from nbflow import DAG
from nbflow.operators import NotebookOperator

with DAG("chain", schedule=None, start_date=datetime(2024, 1, 1)):
    first = NotebookOperator(task_id="first", notebook={first!r})
    second = NotebookOperator(task_id="second", notebook={second!r})
    third = NotebookOperator(task_id="third", notebook={third!r})
    first >> second >> third
'''


def run_command(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NBFLOW_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "nbflow", *args], capture_output=True, text=True, env=env, timeout=300)


def test_dags_test_gives_each_notebook_a_fresh_prestarted_kernel_and_leaves_none_behind(
        nbflow_home: Path, tmp_path: Path) -> None:
    report = "import os, nbflow\nnbflow.output('pid', os.getpid())\nnbflow.output('seen', 'leak' in globals())"
    first = make_notebook(tmp_path / "first.ipynb", "leak = 41", report)
    second = make_notebook(tmp_path / "second.ipynb", report)
    third = make_notebook(tmp_path / "third.ipynb", "assert 'leak' not in globals()", report)
    dag_file = tmp_path / "chain.py"
    dag_file.write_text(textwrap.dedent(CHAIN.format(first=first, second=second, third=third)))
    done = run_command(nbflow_home, "dags", "test", "chain", "-f", str(dag_file))
    assert done.returncode == 0, done.stdout + done.stderr
    left = [(p.pid, p.status(), p.ppid(), p.create_time()) for p in kernels_of(nbflow_home)]
    assert not left, f"a kernel outlived the command: {left} {done.stderr}"

    from nbflow.engine.runs import load_run
    from nbflow.settings import load_settings
    from nbflow.store import Store

    store = Store.open(load_settings())
    try:
        run_id = store.list_runs("chain")[0]["run_id"]
        run = load_run(store, "chain", run_id)
    finally:
        store.close()
    outputs = {task_id: run.outputs[task_id] for task_id in ("first", "second", "third")}
    assert outputs["first"]["seen"] is True
    assert outputs["second"]["seen"] is False and outputs["third"]["seen"] is False
    assert len({out["pid"] for out in outputs.values()}) == 3  # a kernel of its own each
    logs = "".join(Path(run.log_paths[task_id]).read_text() for task_id in outputs)
    assert logs.count("(warm kernel)") == 3, logs


def test_dags_test_whose_run_fails_before_its_notebooks_leaves_no_kernel(nbflow_home: Path, tmp_path: Path) -> None:
    notebook = make_notebook(tmp_path / "n.ipynb", "x = 1")
    dag_file = tmp_path / "fails.py"
    dag_file.write_text(textwrap.dedent(f'''
        from datetime import datetime
        from nbflow import DAG
        from nbflow.operators import BashOperator, NotebookOperator

        with DAG("fails", schedule=None, start_date=datetime(2024, 1, 1)):
            BashOperator(task_id="boom", bash_command="exit 3") >> NotebookOperator(task_id="nb", notebook={notebook!r})
    '''))
    done = run_command(nbflow_home, "dags", "test", "fails", "-f", str(dag_file))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "upstream_failed" in done.stdout
    assert not kernels_of(nbflow_home), "a kernel started ahead outlived the command"


def test_a_runs_kernels_start_all_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernels warmed for a run start side by side, not two at a time: in a chain of three
    notebooks the third kernel was still starting when its task came."""
    import threading

    import nbflow.notebook.pool as pool_module

    together = threading.Barrier(3, timeout=20)

    class Started:
        def shutdown_kernel(self, now: bool = False) -> None:
            pass

    def start_kernel(kernel_name: str, startup_timeout: float = 60.0) -> Started:
        together.wait()  # breaks unless all three starts are under way at the same time
        return Started()

    monkeypatch.setattr(pool_module, "start_kernel", start_kernel)
    pool = KernelPool(size=0)
    try:
        pool.warm("python3", count=3, wait=True)
        taken = [pool.claim("python3").take() for _ in range(3)]
        assert [(type(km), source) for km, source in taken] == [(Started, "warm")] * 3
    finally:
        pool.shutdown()
