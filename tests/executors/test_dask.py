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
        # the call is on the worker (sent and running) before the cluster goes: closed earlier, the
        # call would simply be sent to the new cluster started in its place, and run there
        deadline = time.monotonic() + 60
        while not any(pool.client.run_on_scheduler(
                lambda dask_scheduler: [ts.state == "processing" for ts in dask_scheduler.tasks.values()])):
            assert time.monotonic() < deadline, "the call never reached the worker"
            time.sleep(0.02)
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


def test_memory_limit_applies_on_the_worker(nbflow_home: Path, cluster: DaskExecutor) -> None:
    """A task with memory_limit runs in a process of its own on a Dask worker, held to the limit
    there: over it, the try fails with MemoryLimitError; under it, its peak memory is recorded."""
    from nbflow.store import Store

    with DAG("memory_on_dask", timezone="UTC") as dag:
        @task(memory_limit="150MiB")
        def hog() -> int:
            block = bytearray(400 * 2**20)
            for i in range(0, len(block), 4096):  # resident only once written
                block[i] = 1
            time.sleep(5)
            return len(block)

        @task(memory_limit="1GiB")
        def modest() -> int:
            block = bytearray(30 * 2**20)
            for i in range(0, len(block), 4096):
                block[i] = 1
            return os.getpid()

        hog()
        modest()

    run = dag.test(executor=cluster)
    hog_ti = run.task_instances["hog"]
    assert hog_ti.state is TaskState.FAILED
    assert "memory_limit" in (hog_ti.error or "") or "MemoryLimitError" in (hog_ti.error or ""), hog_ti.error
    assert run.task_instances["modest"].state is TaskState.SUCCESS
    workers = _worker_pids(cluster)
    assert run.outputs["modest"] not in workers  # a process of its own, started by the worker
    with Store.open() as store:
        (tried,) = store.get_tries(store.get_run(run.dag_id, run.run_id)["id"], "modest")
    assert tried["peak_rss"] and tried["peak_rss"] >= 30 * 2**20
    assert tried["worker"] in cluster.client.run(os.getpid)


@pytest.mark.parametrize(("options", "setting"), [
    ({"workers": -1}, "dask_workers"),
    ({"threads_per_worker": 1.5}, "dask_threads_per_worker"),
    ({"address": "somehost"}, "dask_address"),
    ({"address": "tcp://somehost:8786", "workers": 2}, "dask_workers"),
    ({"keep_outputs_over": -5}, "dask_keep_outputs_over"),
])
def test_bad_options_name_the_setting(options: dict[str, Any], setting: str) -> None:
    with pytest.raises(ConfigError, match=setting):
        get_executor("dask", 2, **options)


@pytest.mark.parametrize(("env", "setting"), [
    ({"NBFLOW_DASK_ADDRESS": "somehost"}, "dask_address"),
    ({"NBFLOW_DASK_ADDRESS": "tcp://h:8786", "NBFLOW_DASK_THREADS_PER_WORKER": "4"}, "dask_threads_per_worker"),
    ({"NBFLOW_DASK_WORKERS": "-2"}, "dask_workers"),
    ({"NBFLOW_DASK_KEEP_OUTPUTS_OVER": "lots"}, "dask_keep_outputs_over"),
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


# -- notebooks, placement ---------------------------------------------------------------------------


def _notebook(path: Path) -> str:
    import nbformat
    from nbformat import v4

    nb = v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    params = v4.new_code_cell("n = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells += [params, v4.new_code_cell("import os, nbflow\nprint('kernel of', os.getppid())\n"
                                          "nbflow.output('twice', n * 2)")]
    nbformat.write(nb, path)
    return str(path)


class _UnsharedArtifacts(DaskExecutor):
    """A host whose artifacts folder its workers do not see, as on other machines without shared
    storage: the marker a worker looks for is never there, so the worker writes a try's artifacts
    to a folder of its own and sends them back with the result."""

    def _artifacts_marker(self) -> tuple[str, str]:
        folder, _ = super()._artifacts_marker()
        return folder, ".nbflow-host-that-no-worker-sees"


@pytest.mark.parametrize("shared", [True, False], ids=["shared-artifacts", "artifacts-sent-back"])
def test_a_notebook_task_runs_on_a_worker_and_its_notebook_and_report_reach_the_hosts_artifacts(
    nbflow_home: Path, tmp_path: Path, cluster: DaskExecutor, shared: bool,
) -> None:
    from nbflow.operators import NotebookOperator
    from nbflow.settings import get_settings

    path = _notebook(tmp_path / "double.ipynb")
    with DAG("nb_on_dask", timezone="UTC") as dag:
        @task
        def number() -> int:
            return 21

        nb = NotebookOperator(task_id="nb", notebook=path, parameters={"n": number()}, report="html")

        @task
        def check(twice: int) -> int:
            return twice

        check(nb.output["twice"])

    address = cluster.client.scheduler.address
    pool = DaskExecutor(4, address=address) if shared else _UnsharedArtifacts(4, address=address)
    try:
        run = dag.test(executor=pool)
    finally:
        pool.shutdown()
    assert run.state is RunState.SUCCESS, run.errors
    assert run.outputs["check"] == 42
    assert run.task_instances["nb"].pid in _worker_pids(cluster)
    folder = get_settings().artifacts_folder / "nb_on_dask"
    (executed,) = folder.rglob("nb/double.ipynb")
    (report,) = folder.rglob("nb/double.html")
    assert str(nbflow_home) in str(executed)
    assert "kernel of" in executed.read_text() and "kernel of" in report.read_text()
    log_text = Path(run.log_paths["nb"]).read_text()
    assert f"nbflow: output notebook {executed}" in log_text  # named where the host has it
    assert f"nbflow: report {report}" in log_text
    assert not list(folder.parent.glob(".nbflow-host-*"))  # the host's marker went with its executor
    import tempfile

    assert not list(Path(tempfile.gettempdir()).glob("nbflow-artifacts-*/nb_on_dask"))


def test_a_try_records_the_worker_that_ran_it(nbflow_home: Path, cluster: DaskExecutor) -> None:
    from nbflow.store import Store

    with DAG("where_ran", timezone="UTC") as dag:
        @task
        def here() -> int:
            return os.getpid()

        here()

    from nbflow.jupyter.details import collect_task_details, render_task_details

    run = dag.test(executor=cluster)
    assert run.state is RunState.SUCCESS, run.errors
    with Store.open() as store:
        (first,) = store.get_tries(store.get_run(run.dag_id, run.run_id)["id"], "here")
        shown = render_task_details(collect_task_details(store, run.dag_id, run.run_id, "here"))
    workers = cluster.client.run(os.getpid)  # worker address -> its pid
    assert first["worker"] in workers and workers[first["worker"]] == run.outputs["here"]
    # the notebook widget's details panel and the REST API's tries say where the try ran
    assert f"worker</th><td><code>{first['worker']}</code>" in shown
    from nbflow.jupyter.server.serialize import try_row

    assert try_row(first)["worker"] == first["worker"]


def test_resources_send_a_task_to_a_worker_that_offers_them(nbflow_home: Path, cluster: DaskExecutor) -> None:
    """``resources={"GPU": 1}`` runs only on a worker started with ``--resources GPU=1``."""
    import subprocess
    import sys

    address = cluster.client.scheduler.address
    gpu_worker = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1", "--nworkers", "1",
         "--resources", "GPU=1", "--no-nanny", "--no-dashboard", "--name", "gpu-worker"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )
    try:
        cluster.client.wait_for_workers(3, timeout=60)
        with DAG("placed", timezone="UTC") as dag:
            for i in range(4):
                @task(task_id=f"gpu{i}", resources={"GPU": 1})
                def gpu() -> int:
                    return os.getpid()

                gpu()

            @task(resources={"TPU": 2})
            def tpu() -> int:
                return os.getpid()

            tpu()

        run = dag.test(executor=cluster)
        assert {run.outputs[f"gpu{i}"] for i in range(4)} == {gpu_worker.pid}
        # no worker offers a TPU: refused at once, naming the option and the fix, rather than left waiting
        error = run.task_instances["tpu"].error or ""
        assert "resources" in error and "TPU=2" in error and "dask worker --resources" in error
    finally:
        gpu_worker.terminate()
        gpu_worker.wait(30)


def test_resources_are_refused_by_executors_without_workers_that_offer_them(nbflow_home: Path) -> None:
    with DAG("no_gpu_here", timezone="UTC") as dag:
        @task(resources={"GPU": 1})
        def gpu() -> None:
            return None

        gpu()

    run = dag.test(executor="thread")
    error = run.task_instances["gpu"].error or ""
    assert run.state is RunState.FAILED
    assert "resources" in error and 'executor="dask"' in error


def test_bad_resources_are_refused_when_the_dag_is_built() -> None:
    from nbflow.errors import InvalidOptionError

    for bad in ({"GPU": 0}, {"GPU": "one"}, ["GPU"], {"": 1}, {"GPU": True}):
        with pytest.raises(InvalidOptionError, match="resources"):
            with DAG("bad_resources", timezone="UTC"):
                @task(resources=bad)
                def t() -> None:
                    return None

                t()


def test_priority_weight_orders_the_clusters_queue(tmp_path: Path) -> None:
    """Tries waiting in Dask's queue start by priority_weight, highest first, whatever their order."""
    from distributed import LocalCluster

    gate = tmp_path / "open"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      scheduler_kwargs={"dashboard_address": ":0"}) as local:
        outcomes: list[Any] = []
        arrived = threading.Condition()

        def collect(outcome: Any) -> None:
            with arrived:
                outcomes.append(outcome)
                arrived.notify_all()

        pool = DaskExecutor(16, address=local.scheduler_address)
        pool.start(collect)
        try:
            pool.submit("gate", _wait_for, (str(gate),))
            deadline = time.monotonic() + 60
            while not (tmp_path / "open.waiting").exists() and time.monotonic() < deadline:
                time.sleep(0.02)

            def queued_in_cluster() -> int:
                """How many of the timed calls the cluster's scheduler holds."""
                return sum(pool.client.run_on_scheduler(
                    lambda dask_scheduler: [str(key).startswith("time-") for key in dask_scheduler.tasks]))

            for i in range(4):
                pool.submit(f"low{i}", time.time, priority=1)
            # the low ones are in the cluster's queue before the high ones come
            while queued_in_cluster() < 4 and time.monotonic() < deadline:
                time.sleep(0.02)
            for i in range(4):
                pool.submit(f"high{i}", time.time, priority=10)
            while queued_in_cluster() < 8 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert queued_in_cluster() == 8
            gate.touch()
            with arrived:
                assert arrived.wait_for(lambda: len(outcomes) == 9, 60)
        finally:
            pool.shutdown(wait=False)
    started = {o.key: o.value for o in outcomes}
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    lows = sorted(started[f"low{i}"] for i in range(4))
    # Dask may already have handed one queued call to the worker before the high ones arrived
    assert max(started[f"high{i}"] for i in range(4)) < lows[1]


def _wait_for(path: str) -> None:
    Path(path + ".waiting").touch()
    deadline = time.monotonic() + 60
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)


# -- a host and its cluster -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Cluster:
    """A Dask cluster as started on machines of one's own: ``dask scheduler`` and one ``dask
    worker``, as separate processes that a test can stop and start again on the same address."""

    def __init__(self, port: int, log: Path) -> None:
        self.address = f"tcp://127.0.0.1:{port}"
        self.port, self.log = port, log
        self.processes: list[Any] = []

    def start(self) -> None:
        import subprocess
        import sys

        with self.log.open("ab") as out:
            for args in (["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                          "--dashboard-address", ":0"],
                         ["distributed.cli.dask_worker", self.address, "--nthreads", "2", "--no-dashboard"]):
                self.processes.append(subprocess.Popen([sys.executable, "-m", *args], stdout=out,
                                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                       start_new_session=True))

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)  # the worker's own worker process too
                process.wait(30)
        self.processes.clear()


def test_a_cluster_shut_down_mid_run_is_an_outage_of_the_host_and_the_run_resumes_when_one_is_back(
    tmp_path: Path,
) -> None:
    """``nbflow scheduler`` with ``dask_address``: the cluster goes away while a task runs. The try
    fails (WorkerLostError), the host stays up and says the cluster cannot be reached, and once a
    cluster answers on that address again the retry and the rest of the run go there."""
    import subprocess
    import sys
    import textwrap
    import urllib.request

    from daemons import scheduler_daemon
    from waiting import wait_for

    home = tmp_path / "home"
    (home / "dags").mkdir(parents=True)
    marker = tmp_path / "started"
    (home / "dags" / "outage.py").write_text(textwrap.dedent(f"""
        import os, time
        from datetime import timedelta
        from nbflow import DAG, task

        with DAG("outage", schedule="@once", start_date="2024-01-01", timezone="UTC",
                 default_args={{"retries": 2, "retry_delay": timedelta(0)}}) as d:
            @task
            def long(ti=None):
                if ti.try_number == 1:
                    open({str(marker)!r}, "w").write(str(os.getpid()))
                    time.sleep(120)
                return ti.try_number

            @task
            def after(n):
                return n * 10

            after(long())
    """))
    cluster = _Cluster(_free_port(), tmp_path / "cluster.log")
    cluster.start()
    try:
        with scheduler_daemon(home, f"sqlite:///{home / 'nbflow.db'}", tmp_path / "daemon.log",
                              executor="dask", dask_address=cluster.address) as daemon:
            def status() -> str:
                done = subprocess.run([sys.executable, "-m", "nbflow", "scheduler", "status"], env=daemon.env,
                                      capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
                return done.stdout + done.stderr

            wait_for(marker.exists, 120, "the first try to start on the cluster")
            shown = wait_for(lambda: "dashboard http" in (text := status()) and text, 30, "the dashboard link")
            link = shown.split("dashboard ", 1)[1].split()[0]
            with urllib.request.urlopen(link, timeout=30) as page:  # the cluster's own dashboard
                assert page.status == 200
            assert f"tasks run on the Dask cluster {cluster.address}" in shown
            # the REST API's scheduler status (GET scheduler) carries the same, for the Jupyter views
            from nbflow.jupyter.server.serialize import host as host_json

            (hosted,) = [host_json(h, set()) for h in daemon.store.list_hosts() if h["kind"] == "daemon"]
            assert hosted["executor"] == "dask" and hosted["cluster"] == cluster.address
            assert hosted["dashboard"] == link

            cluster.stop()  # the whole cluster goes away while the try runs
            shown = wait_for(lambda: "could not be reached" in (text := status()) and text, 120,
                             "the host to say the cluster is down")
            assert cluster.address in shown and daemon.process.poll() is None
            run = daemon.latest_run("outage")
            assert run is not None and run["state"] == "running", daemon.tail()

            cluster.start()  # a cluster answers on that address again
            run = daemon.finished_run("outage", 180)
            assert run["state"] == "success", daemon.tail()
            assert daemon.process.poll() is None  # the host lived through it
            tries = daemon.store.get_tries(run["id"], "long")
            assert [t["state"] for t in tries][-1] == "success" and tries[0]["state"] == "up_for_retry"
            assert "WorkerLostError" in (tries[0]["error"] or "") or "Dask" in (tries[0]["error"] or "")
            (ti,) = [t for t in daemon.store.get_task_instances(run["id"]) if t["task_id"] == "after"]
            assert ti["state"] == "success"
    finally:
        cluster.stop()


def test_functions_defined_in_main_run_on_the_workers(tmp_path: Path) -> None:
    """A script run as ``python script.py``: its task and the helper it calls live in ``__main__``,
    which no worker can import by that name; they travel by value."""
    import json
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "pipeline.py"
    script.write_text(textwrap.dedent("""
        import json, os
        from nbflow import DAG, task

        def helper(n):
            return n * 3

        class Box:
            def __init__(self, n):
                self.n = n

        with DAG("from_main", timezone="UTC") as dag:
            @task
            def make():
                return Box(helper(5)).n, os.getpid()

            make()

        if __name__ == "__main__":
            run = dag.test(executor="dask")
            print("RESULT " + json.dumps({"state": run.state.value, "out": run.outputs.get("make"),
                                          "host": os.getpid(), "errors": {k: str(v) for k, v in run.errors.items()}}))
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBFLOW_")}
    env.update(NBFLOW_HOME=str(tmp_path / "home"), NBFLOW_DASK_WORKERS="1", NBFLOW_DASK_THREADS_PER_WORKER="1")
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=240,
                          stdin=subprocess.DEVNULL, cwd=tmp_path)
    line = next((l for l in done.stdout.splitlines() if l.startswith("RESULT ")), None)
    assert line is not None, done.stderr[-3000:]
    result = json.loads(line.removeprefix("RESULT "))
    assert result["state"] == "success", result["errors"]
    assert result["out"][0] == 15 and result["out"][1] != result["host"]


def test_one_task_asks_for_the_cluster_and_its_neighbours_stay_in_threads(
    nbflow_home: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``executor="dask"`` on one task of a DAG run with threads: the host starts a LocalCluster for
    that task alone (sized by the dask_* settings), records the worker that ran it, and closes the
    cluster with the run."""
    from nbflow.store import Store

    monkeypatch.setenv("NBFLOW_DASK_WORKERS", "1")
    monkeypatch.setenv("NBFLOW_DASK_THREADS_PER_WORKER", "1")
    with DAG("one_on_dask", timezone="UTC") as dag:
        @task
        def here() -> int:
            return os.getpid()

        @task(executor="dask")
        def there(upstream: int) -> list[int]:
            return [upstream, os.getpid()]

        there(here())

    run = dag.test(executor="thread")
    assert run.state is RunState.SUCCESS, run.errors
    upstream, worker_pid = run.outputs["there"]
    assert upstream == run.outputs["here"] == os.getpid() and worker_pid != os.getpid()
    with Store.open() as store:
        pk = store.get_run(run.dag_id, run.run_id)["id"]
        (on_dask,) = store.get_tries(pk, "there")
        (in_thread,) = store.get_tries(pk, "here")
    assert on_dask["worker"].startswith("tcp://") and not in_thread["worker"]
    deadline = time.monotonic() + 30
    while _alive(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(worker_pid)  # the cluster the host started went with the run


def _datasets(pool: DaskExecutor) -> list[str]:
    return [name for name in pool.client.list_datasets() if str(name).startswith("nbflow-output-")]


def test_a_large_output_stays_on_the_cluster_and_its_readers_get_it_there_or_through_the_host(
    nbflow_home: Path, cluster: DaskExecutor, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Over dask_keep_outputs_over, an output stays on the worker that made it: the store keeps its
    preview, size and dataset name, not its bytes (so the store's max_output_bytes does not refuse
    it); a downstream task on the cluster reads it there, one in a thread on the host gets it
    through the host; the run's end releases it."""
    from nbflow.outputs import KeptOutput
    from nbflow.store import Store

    monkeypatch.setattr(cluster, "keep_outputs_over", 100_000)
    monkeypatch.setenv("NBFLOW_MAX_OUTPUT_BYTES", "500000")  # the value is larger: kept, not refused
    with DAG("kept_on_cluster", timezone="UTC") as dag:
        @task
        def big() -> list[int]:
            return list(range(300_000))

        @task
        def small() -> int:
            return 7

        @task
        def on_cluster(values: list[int], seven: int) -> dict[str, Any]:
            from distributed import get_client

            held = [n for n in get_client().list_datasets() if str(n).startswith("nbflow-output-")]
            return {"sum": sum(values), "seven": seven, "held": held}

        @task(executor="thread")
        def on_host(values: list[int]) -> list[int]:
            return [len(values), os.getpid()]

        made = big()
        on_cluster(made, small())
        on_host(made)

    assert _datasets(cluster) == []
    run = dag.test(executor=cluster)

    assert run.state is RunState.SUCCESS, run.errors
    read = run.outputs["on_cluster"]
    assert read["sum"] == sum(range(300_000)) and read["seven"] == 7
    assert len(read["held"]) == 1  # the big output, and only it, was a dataset on the cluster meanwhile
    assert run.outputs["on_host"] == [300_000, os.getpid()]
    kept = run.outputs["big"]
    assert isinstance(kept, KeptOutput) and kept.name == read["held"][0]
    assert kept.type_name == "list" and kept.size > 500_000 and kept.preview.startswith("[0, 1, 2, ")
    assert "kept on the Dask cluster" in repr(kept)
    with Store.open() as store:
        rows = store.get_outputs(store.get_run(run.dag_id, run.run_id)["id"])
    assert rows["big"]["kind"] == "cluster" and rows["big"]["value_json"] == kept.name
    assert rows["big"]["artifact_path"] is None and rows["small"]["kind"] == "json"
    assert _datasets(cluster) == []  # released when the run ended
    assert not list((nbflow_home / "artifacts").rglob("output.pickle"))  # its bytes never came to the host


def test_a_branching_tasks_output_is_never_kept_on_the_cluster(
    nbflow_home: Path, cluster: DaskExecutor, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A branch's output is its decision, which the host reads to know what runs next: however
    large, it comes back to the host rather than staying on the cluster."""
    monkeypatch.setattr(cluster, "keep_outputs_over", 10)
    with DAG("kept_branch", timezone="UTC") as dag:
        @task.branch
        def choose() -> list[str]:
            return ["taken_with_a_long_name"]

        @task
        def taken_with_a_long_name() -> str:
            return "ran"

        @task
        def other() -> str:
            return "ran"

        choose() >> [taken_with_a_long_name(), other()]

    run = dag.test(executor=cluster)

    assert run.state is RunState.SUCCESS, run.errors
    assert run.outputs["choose"] == ["taken_with_a_long_name"]
    assert run.task_states == {"choose": TaskState.SUCCESS, "taken_with_a_long_name": TaskState.SUCCESS,
                               "other": TaskState.SKIPPED}


def test_a_resumed_run_releases_the_outputs_its_earlier_host_kept(
    nbflow_home: Path, cluster: DaskExecutor, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A driver that resumes a run (adopted from a dead host, or after a clear) loads an output only
    when a task reads it; the outputs kept on the cluster are still all released when the run ends,
    read from the store."""
    from nbflow.engine.controls import clear, trigger
    from nbflow.engine.scheduler import Scheduler
    from nbflow.settings import get_settings
    from nbflow.store import Store

    monkeypatch.setattr(cluster, "keep_outputs_over", 1_000)
    with DAG("kept_resumed", timezone="UTC", schedule=None) as dag:
        @task
        def big() -> list[int]:
            return list(range(10_000))

        @task
        def after() -> str:  # downstream of nothing: no try of the resumed run reads big's output
            return "done"

        big()
        after()

    def serve() -> None:
        Scheduler(settings=get_settings(), dags=[dag], executor=cluster).serve(exit_when_idle=True)

    run_id = trigger(dag)
    serve()
    with Store.open() as store:
        name = store.get_outputs(store.get_run("kept_resumed", run_id)["id"])["big"]["value_json"]
    assert name.startswith("nbflow-output-") and _datasets(cluster) == []  # released by the first run's end
    # as if the first host had died before its run ended: the dataset is still on the cluster (an
    # encoded output, as a worker publishes it)
    cluster.client.publish_dataset(cluster.client.submit(_encoded_output, pure=False), name=name)
    assert _datasets(cluster) == [name]
    clear(dag, run_id=run_id, task_ids=["after"])
    serve()  # a new driver: big succeeded where it did not see it

    with Store.open() as store:
        assert store.get_run("kept_resumed", run_id)["state"] == "success"
    assert _datasets(cluster) == []


def _encoded_output() -> tuple[str, str]:
    return "json", "[1, 2, 3]"


def test_a_task_maps_over_a_list_kept_on_the_cluster(
    nbflow_home: Path, cluster: DaskExecutor, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The host counts the items of a list that stayed on the cluster (fetched through it) to expand
    the mapped task; each instance reads its item."""
    monkeypatch.setattr(cluster, "keep_outputs_over", 1_000)
    with DAG("maps_kept", timezone="UTC") as dag:
        @task
        def rows() -> list[str]:
            return ["x" * 400, "y" * 400, "z" * 400]

        @task
        def size(row: str) -> int:
            return len(row)

        size.expand(row=rows())

    run = dag.test(executor=cluster)
    assert run.state is RunState.SUCCESS, run.errors
    assert run.outputs["size"] == [400, 400, 400]
    assert _datasets(cluster) == []


def test_an_output_the_cluster_no_longer_holds_fails_its_reader_naming_the_task_to_clear(
    nbflow_home: Path, cluster: DaskExecutor,
) -> None:
    from nbflow.errors import OutputOnClusterError

    with pytest.raises(OutputOnClusterError, match="no longer holds it"):
        cluster.fetch_output("nbflow-output-gone")
    with DAG("reads_gone", timezone="UTC") as dag:
        @task
        def use(values: list[int]) -> int:
            return len(values)

        use([1])  # stands for the output of an upstream task "make", given in the request below

    from datetime import datetime, timezone

    from nbflow.engine.runner import TaskRequest, run_task

    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    request = TaskRequest(dag_id="reads_gone", task_id="use", run_id="manual__x", try_number=1, max_tries=1,
                          logical_date=when, data_interval_start=when, data_interval_end=when, conf={},
                          log_path=str(nbflow_home / "use.log"), operator=dag.task_dict["use"], dag=dag,
                          upstream={"make": ("cluster", "nbflow-output-gone")})
    with pytest.raises(OutputOnClusterError) as caught:
        cluster.client.submit(_run_here, request, pure=False).result()
    text = str(caught.value)
    assert "task 'make'" in text and "'use' could not read it" in text
    assert "nbflow tasks clear reads_gone -t make --downstream -r manual__x --yes" in text
    with pytest.raises(OutputOnClusterError, match="task 'make'"):
        run_task(request)


def _run_here(request: Any) -> Any:
    from nbflow.engine.runner import run_task
    from nbflow.executors.dask import _read_kept_inputs

    _read_kept_inputs(request)  # as a try on a worker does: a dataset that is gone stays as it was
    return run_task(request)


def test_small_replies_come_as_events_and_large_ones_are_fetched_from_their_worker(
    nbflow_home: Path, cluster: DaskExecutor, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reply of at most REPLY_INLINE bytes reaches the host as a Dask event, with no fetch from
    its worker (a fetch per few calls cost the workers twice bare Dask's CPU); a larger one is
    fetched. Both give the task's value and log."""
    from nbflow.executors import dask as dask_module

    fetched: list[int] = []
    real_fetch = DaskExecutor._fetch

    def counting(self: DaskExecutor, pairs: list[Any]) -> None:
        fetched.append(len(pairs))
        real_fetch(self, pairs)

    monkeypatch.setattr(DaskExecutor, "_fetch", counting)
    with DAG("replies", timezone="UTC") as dag:
        @task
        def small() -> str:
            print("small says hello")
            return "s" * 100

        @task
        def large() -> str:
            return "l" * (dask_module.REPLY_INLINE + 1000)

        small()
        large()

    run = dag.test(executor=cluster)
    assert run.state is RunState.SUCCESS, run.errors
    assert run.outputs["small"] == "s" * 100
    assert run.outputs["large"] == "l" * (dask_module.REPLY_INLINE + 1000)
    assert "small says hello" in Path(run.log_paths["small"]).read_text()
    assert sum(fetched) == 1  # the large reply alone was fetched
