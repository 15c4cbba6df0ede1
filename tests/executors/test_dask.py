"""The dask executor against a real LocalCluster of two worker processes.

One cluster serves the whole module (starting one costs seconds on a busy machine); the tests that
break a cluster on purpose make their own.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from nbflow import DAG, task
from nbflow.errors import ConfigError, WorkerLostError
from nbflow.executors import get_executor
from nbflow.executors.dask import DaskExecutor
from nbflow.operators.bash import BashOperator
from nbflow.states import RunState, TaskState

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


@pytest.fixture(scope="module")
def cluster() -> Iterator[DaskExecutor]:
    """One dask executor with its own LocalCluster (2 worker processes x 4 threads) for the module."""
    pool = get_executor("dask", 8, workers=2, threads_per_worker=4)
    assert isinstance(pool, DaskExecutor)
    pool.client.wait_for_workers(2, timeout=60)
    yield pool
    pool.shutdown(wait=False)


def _worker_pids(pool: DaskExecutor) -> set[int]:
    return set(pool.client.run(os.getpid).values())


def test_python_and_bash_tasks_run_on_the_workers_and_outputs_flow_downstream(
    nbflow_home: Path, cluster: DaskExecutor,
) -> None:
    # defined here, in no importable module: the functions travel by value, as a notebook's do
    with DAG("on_dask", timezone="UTC") as dag:
        @task
        def make() -> dict[str, Any]:
            import sys

            print("making on", os.getpid())
            return {"n": 20, "pid": os.getpid(), "test_module_loaded": [m for m in sys.modules if "test_dask" in m]}

        @task
        def add(made: dict[str, Any]) -> int:
            print("adding to", made["n"])
            return made["n"] + 22

        shell = BashOperator(task_id="shell", bash_command="echo bash on $(hostname) pid $$")
        add(make()) >> shell

    run = dag.test(executor=cluster)

    assert run.state is RunState.SUCCESS, run.errors
    assert run.outputs["add"] == 42
    made = run.outputs["make"]
    assert made["pid"] in _worker_pids(cluster) and made["pid"] != os.getpid()
    assert made["test_module_loaded"] == []  # shipped by value: the worker never imported this module
    tis = run.task_instances
    assert {tis[t].pid for t in tis} <= _worker_pids(cluster)
    # each log was written on its worker, sent back and written here, where other executors write it
    assert "making on" in Path(run.log_paths["make"]).read_text()
    assert "adding to 20" in Path(run.log_paths["add"]).read_text()
    assert f"bash on {socket.gethostname()}" in Path(run.log_paths["shell"]).read_text()
    assert str(nbflow_home) in run.log_paths["shell"]


def test_a_running_tasks_log_can_be_followed_on_the_host(nbflow_home: Path, tmp_path: Path,
                                                        cluster: DaskExecutor) -> None:
    marker = tmp_path / "seen"
    with DAG("followed", timezone="UTC") as dag:
        @task
        def talks() -> bool:
            print("first line", flush=True)
            deadline = time.monotonic() + 30
            while not Path(str(marker)).exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            print("second line")
            return Path(str(marker)).exists()

        talks()

    def follow() -> None:  # as a person tailing the log would, on the host, while the try runs
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = list((nbflow_home / "logs").rglob("talks/1.log"))
            if found and "first line" in found[0].read_text():
                marker.touch()
                return
            time.sleep(0.05)

    follower = threading.Thread(target=follow)
    follower.start()
    run = dag.test(executor=cluster)
    follower.join()
    assert run.outputs["talks"] is True  # the first line reached the host while the task waited
    text = Path(run.log_paths["talks"]).read_text()
    assert text.count("first line") == 1 and text.count("second line") == 1
    assert text.index("first line") < text.index("second line")


def test_a_task_that_raises_fails_with_its_error_and_traceback(nbflow_home: Path, cluster: DaskExecutor) -> None:
    with DAG("raises", timezone="UTC") as dag:
        @task
        def boom() -> None:
            print("about to fail")
            raise ValueError("boom on the worker")

        boom()

    run = dag.test(executor=cluster)
    assert run.state is RunState.FAILED
    error = run.task_instances["boom"].error or ""
    assert "ValueError: boom on the worker" in error and ", in boom" in error  # the worker's traceback
    log_text = Path(run.log_paths["boom"]).read_text()
    assert "about to fail" in log_text and "ValueError: boom on the worker" in log_text


def test_the_executor_setting_and_dag_test_by_name_use_a_local_cluster_closed_with_the_run(
    nbflow_home: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NBFLOW_EXECUTOR", "dask")
    monkeypatch.setenv("NBFLOW_DASK_WORKERS", "1")
    monkeypatch.setenv("NBFLOW_DASK_THREADS_PER_WORKER", "2")
    with DAG("by_setting", timezone="UTC") as dag:
        @task
        def where() -> int:
            return os.getpid()

        where()

    run = dag.test()
    assert run.state is RunState.SUCCESS, run.errors
    assert run.outputs["where"] != os.getpid()
    # the host's cluster went with the run: its worker process is gone
    pid = run.outputs["where"]
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def test_a_worker_killed_during_a_task_fails_the_try_and_the_retry_succeeds(
    nbflow_home: Path, tmp_path: Path, cluster: DaskExecutor,
) -> None:
    started = tmp_path / "started"
    with DAG("killed", timezone="UTC", default_args={"retries": 1, "retry_delay": timedelta(0)}) as dag:
        @task
        def slow(ti: Any = None) -> int:
            if ti.try_number == 1:
                Path(str(started)).write_text(str(os.getpid()))
                time.sleep(60)
            return os.getpid()

        slow()

    workers = _worker_pids(cluster)
    killed: list[int] = []

    def kill_when_started() -> None:
        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        pid = int(started.read_text())
        assert pid in workers
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    killer = threading.Thread(target=kill_when_started)
    killer.start()
    run = dag.test(executor=cluster)
    killer.join()

    assert run.state is RunState.SUCCESS, run.errors
    ti = run.task_instances["slow"]
    assert ti.try_number == 2
    assert run.outputs["slow"] != killed[0]
    from nbflow.store import Store

    store = Store.open()
    try:
        tries = store.get_tries(store.get_run(run.dag_id, run.run_id)["id"], "slow")
    finally:
        store.close()
    assert [t["state"] for t in tries] == ["up_for_retry", "success"]
    assert "worker" in tries[0]["error"] and "died" in tries[0]["error"]
    cluster.client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker


def test_execution_timeout_cancels_the_future_and_fails_the_try(nbflow_home: Path, cluster: DaskExecutor) -> None:
    with DAG("timeout", timezone="UTC") as dag:
        @task(execution_timeout=timedelta(seconds=1))
        def hangs() -> None:
            time.sleep(6)

        hangs()

    began = time.monotonic()
    run = dag.test(executor=cluster)
    assert time.monotonic() - began < 5.5
    assert run.state is RunState.FAILED
    ti = run.task_instances["hangs"]
    assert ti.state is TaskState.FAILED
    assert "execution_timeout of 1 s" in (ti.error or "")


def test_the_timeout_counts_from_the_start_on_a_worker_not_from_the_queue(cluster: DaskExecutor) -> None:
    # eight slots here but more calls than the cluster's threads: the last ones wait in Dask's queue
    outcomes: list[Any] = []
    done = threading.Event()

    def collect(outcome: Any) -> None:
        outcomes.append(outcome)
        if len(outcomes) == 9:
            done.set()

    pool = DaskExecutor(16, address=cluster.client.scheduler.address)
    pool.start(collect)
    try:
        for i in range(9):  # 8 threads on the cluster: the ninth starts only when one ends
            pool.submit(i, time.sleep, (0.8,), timeout=1.5)
        assert done.wait(30)
    finally:
        pool.shutdown(wait=False)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok]


def test_a_cluster_that_cannot_be_reached_holds_the_tasks_until_it_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    import nbflow.executors.dask as dask_executor
    from distributed import LocalCluster

    monkeypatch.setattr(dask_executor, "CONNECT_TIMEOUT", 0.5)
    monkeypatch.setattr(dask_executor, "RECONNECT_AFTER", 0.2)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once the socket closes
    outcomes: list[Any] = []
    arrived = threading.Condition()

    def collect(outcome: Any) -> None:
        with arrived:
            outcomes.append(outcome)
            arrived.notify_all()

    pool = DaskExecutor(2, address=f"tcp://127.0.0.1:{port}")
    pool.start(collect)
    cluster = None
    try:
        pool.submit("a", os.getpid)  # the call that finds the cluster down fails, naming it
        with arrived:
            assert arrived.wait_for(lambda: len(outcomes) == 1, 30)
        assert not outcomes[0].ok and isinstance(outcomes[0].error, WorkerLostError)
        assert f"tcp://127.0.0.1:{port}" in str(outcomes[0].error)
        assert pool.free_slots == 0  # then a host starts nothing: its tries wait in the store
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, scheduler_port=port,
                               dashboard_address=None, scheduler_kwargs={"dashboard_address": ":0"})
        deadline = time.monotonic() + 60
        while pool.free_slots == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool.free_slots == 2  # the probe reached the cluster once it was up
        pool.submit("b", os.getpid)
        with arrived:
            assert arrived.wait_for(lambda: len(outcomes) == 2, 60)
        assert outcomes[1].ok and outcomes[1].value != os.getpid()
    finally:
        pool.shutdown(wait=False)
        if cluster is not None:
            cluster.close()


def test_a_cluster_that_goes_away_mid_call_fails_it_and_the_next_call_gets_a_new_one() -> None:
    outcomes: list[Any] = []
    arrived = threading.Condition()

    def collect(outcome: Any) -> None:
        with arrived:
            outcomes.append(outcome)
            arrived.notify_all()

    pool = DaskExecutor(2, workers=1, threads_per_worker=1)
    pool.start(collect)
    try:
        pool.submit("long", time.sleep, (30,))
        pool.client.wait_for_workers(1, timeout=60)
        first = pool._cluster
        first.close()  # the whole cluster goes away while the call runs
        with arrived:
            assert arrived.wait_for(lambda: len(outcomes) == 1, 60)
        assert not outcomes[0].ok and isinstance(outcomes[0].error, WorkerLostError)
        pool.submit("after", os.getpid)
        with arrived:
            assert arrived.wait_for(lambda: len(outcomes) == 2, 60)
        assert outcomes[1].ok and outcomes[1].value != os.getpid()
    finally:
        pool.shutdown(wait=False)


def test_memory_limit_is_refused_not_ignored(cluster: DaskExecutor) -> None:
    outcomes: list[Any] = []
    pool = DaskExecutor(2, address=cluster.client.scheduler.address)
    pool.start(outcomes.append)
    pool.submit("big", os.getpid, memory_limit=1 << 30)
    pool.shutdown()
    assert len(outcomes) == 1 and not outcomes[0].ok
    assert "memory_limit" in str(outcomes[0].error)


@pytest.mark.parametrize(("options", "setting"), [
    ({"workers": -1}, "dask_workers"),
    ({"threads_per_worker": 1.5}, "dask_threads_per_worker"),
    ({"address": "somehost"}, "dask_address"),
    ({"address": "tcp://somehost:8786", "workers": 2}, "dask_workers"),
])
def test_bad_options_name_the_setting(options: dict[str, Any], setting: str) -> None:
    with pytest.raises(ConfigError, match=setting):
        get_executor("dask", 2, **options)


@pytest.mark.parametrize(("env", "setting"), [
    ({"NBFLOW_DASK_ADDRESS": "somehost"}, "dask_address"),
    ({"NBFLOW_DASK_ADDRESS": "tcp://h:8786", "NBFLOW_DASK_THREADS_PER_WORKER": "4"}, "dask_threads_per_worker"),
    ({"NBFLOW_DASK_WORKERS": "-2"}, "dask_workers"),
])
def test_bad_settings_are_refused_when_read(tmp_path: Path, env: dict[str, str], setting: str) -> None:
    from nbflow.settings import load_settings

    with pytest.raises(ConfigError, match=setting):
        load_settings(env={"NBFLOW_HOME": str(tmp_path), **env})


def test_the_scheduler_daemon_runs_a_dag_files_tasks_on_its_own_local_cluster(tmp_path: Path) -> None:
    """``nbflow scheduler -e dask``: the functions of a DAG file (a module no worker can import)
    travel by value, the log comes back to the host's logs folder, and the cluster ends with the host."""
    import subprocess
    import sys
    import textwrap

    from nbflow.store import Store

    home = tmp_path / "home"
    (home / "dags").mkdir(parents=True)
    (home / "dags" / "on_cluster.py").write_text(textwrap.dedent("""
        import os
        from nbflow import DAG, task

        def helper(ds):  # a module-level function of the DAG file, used on the worker
            return f"made for {ds}"

        with DAG("on_cluster", schedule="@daily", start_date="2024-01-01", timezone="UTC") as d:
            @task
            def make(ds):
                print("on the worker", os.getpid())
                return {"text": helper(ds), "pid": os.getpid()}

            make()
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBFLOW_")}
    env.update(NBFLOW_HOME=str(home), NBFLOW_HEARTBEAT_INTERVAL="0.2", NBFLOW_POLL_INTERVAL="0.2",
               NBFLOW_DASK_WORKERS="1", NBFLOW_DASK_THREADS_PER_WORKER="2")
    done = subprocess.run([sys.executable, "-m", "nbflow", "scheduler", "--exit-when-idle", "-e", "dask"], env=env,
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    with Store(f"sqlite:///{home / 'nbflow.db'}") as store:
        (run,) = store.list_runs("on_cluster", limit=None)
        assert run["state"] == "success"
        (ti,) = store.get_task_instances(run["id"])
        (host,) = store.list_hosts()
        assert ti["pid"] != host["pid"]  # ran on a Dask worker, not in the daemon
        log_text = Path(ti["log_path"]).read_text()
    assert f"on the worker {ti['pid']}" in log_text
    assert str(home / "logs") in ti["log_path"]
    assert not _alive(ti["pid"])  # the host's cluster ended with it
