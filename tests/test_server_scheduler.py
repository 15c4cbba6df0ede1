"""The scheduler host inside the Jupyter server (``NbflowApp.run_scheduler``): it schedules and runs
DAGs, triggered runs are queued for it, it stops cleanly with the server, and next to an
``nbflow scheduler`` daemon on one SQLite store no task instance runs twice."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from jupyter_api import *  # noqa: F403 (the test server's fixtures)
from jupyter_api import FAST, Api, wait_for
from nbflow.store import Store

WIDTH = 100


@pytest.fixture
def nbflow_config() -> dict[str, Any]:
    return {"run_scheduler": True}


def start_extensions(api: Api) -> None:
    """What a server does once its event loop runs (the test server skips it): start the host."""
    api._loop.run_until_complete(api.serverapp.extension_manager.start_all_extensions())


def stop_extensions(api: Api) -> None:
    """What a server does at shutdown."""
    api._loop.run_until_complete(api.serverapp.extension_manager.stop_all_extensions())


def server_hosts(store: Store) -> list[dict[str, Any]]:
    return [h for h in store.list_hosts() if h["kind"] == "jupyter-server"]


def test_the_server_schedules_runs_queues_triggers_and_stops_cleanly(api: Api, server_env: Path) -> None:
    (server_env / "dags" / "hello.py").write_text(textwrap.dedent('''
        from nbflow import dag, task

        @dag(schedule="@once", start_date="2024-01-01", timezone="UTC")
        def hello():
            @task
            def greet(conf):
                return f"hello {conf.get('who', 'world')}"
            greet()

        hello()
    '''))
    assert api.app.run_scheduler is True
    assert api.get("scheduler")["in_server"] is False  # not before the server has started
    start_extensions(api)
    with Store.open() as store:
        (host,) = wait_for(lambda: server_hosts(store), 30, "the server's scheduler host")
        assert host["pid"] == os.getpid() and host["state"] == "running"
        # it runs what is due: the @once run
        scheduled = wait_for(lambda: [r for r in store.list_runs("hello") if r["state"] == "success"], 60,
                             "the scheduled run")
        assert scheduled[0]["run_type"] == "scheduled"
        status = api.get("scheduler")
        assert status["alive"] is True and status["in_server"] is True
        (shown,) = [h for h in status["hosts"] if h["host_id"] == host["host_id"]]
        assert shown["kind"] == "jupyter-server" and shown["state"] == "running" and shown["last_heartbeat"]
        # a trigger is queued for it, not run beside it
        body = api.post("dags", "hello", "runs", body={"conf": {"who": "Lab"}}, expect=201)
        assert body["how"] == "queued"
        run_id = body["run"]["run_id"]
        wait_for(lambda: store.get_run("hello", run_id)["state"] == "success", 60, "the triggered run")
        (ti,) = store.get_task_instances(store.get_run("hello", run_id)["id"])
        assert ti["claimed_by"] == host["host_id"]
        assert api.get("dags", "hello", "runs", run_id, "tasks", "greet", "output")["value"] == "hello Lab"
        stop_extensions(api)
        (stopped,) = server_hosts(store)
        assert stopped["state"] == "stopped" and stopped["stopped_at"] is not None
    assert api.app.services.host.running is False
    assert not [t for t in threading.enumerate() if t.name == "nbflow-server-scheduler"]


# -- next to a daemon ---------------------------------------------------------------------------------

SHARED = '''
import os
import time

from nbflow import DAG
from nbflow.operators import PythonOperator

SIDE = {side!r}
GATE = {gate!r}


def note(ti):
    # both hosts run tasks in worker processes (executor = auto): the host is the worker's parent
    fd = os.open(SIDE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{{ti.run_id}} {{ti.task_id}} {{ti.try_number}} {{os.getppid()}}\\n".encode())
    finally:
        os.close(fd)


def wait_for_gate(ti):
    deadline = time.monotonic() + 60
    while not os.path.exists(GATE) and time.monotonic() < deadline:
        time.sleep(0.01)
    note(ti)


def work(ti):
    time.sleep(0.05)
    note(ti)


with DAG("shared", schedule="@once", start_date="2024-01-01", timezone="UTC", max_active_tasks=64):
    gate = PythonOperator(task_id="gate", python_callable=wait_for_gate)
    for i in range({width}):
        gate >> PythonOperator(task_id=f"w{{i:03d}}", python_callable=work)
'''


@pytest.fixture
def shared_env(server_env: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Four slots per host, so that the work is shared; a generous stale limit, so that no host is
    taken for dead while the machine is busy (nobody dies here)."""
    extra = {"NBFLOW_PARALLELISM": "4", "NBFLOW_HOST_STALE_AFTER": "15"}
    for name, value in extra.items():
        monkeypatch.setenv(name, value)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBFLOW_")}
    env.update(NBFLOW_HOME=str(server_env), **FAST, **extra)
    return env


@pytest.mark.slow
def test_the_server_host_and_a_daemon_never_run_a_task_twice(shared_env: dict[str, str], jp_fetch: Any,
                                                             jp_serverapp: Any, jp_asyncio_loop: Any,
                                                             server_env: Path, tmp_path: Path) -> None:
    side, gate = tmp_path / "side_effects.txt", tmp_path / "gate"
    (server_env / "dags" / "shared.py").write_text(SHARED.format(side=str(side), gate=str(gate), width=WIDTH))
    api = Api(jp_fetch, jp_asyncio_loop, jp_serverapp)
    assert api.app.services.settings.parallelism == 4  # the server was started with the shared settings
    start_extensions(api)
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen([sys.executable, "-m", "nbflow", "scheduler", "--exit-when-idle"], env=shared_env,
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        with Store.open() as store:
            def both_running() -> bool:
                kinds = {h["kind"]: h for h in store.list_hosts("running")}
                return "jupyter-server" in kinds and kinds.get("daemon", {}).get("pid") == daemon.pid

            wait_for(both_running, 60, "the server's host and the daemon to register")
            status = api.get("scheduler")
            assert status["in_server"] is True and {"jupyter-server", "daemon"} <= {h["kind"] for h in status["hosts"]}
            gate.write_text("open")
            assert daemon.wait(timeout=120) == 0, log.read_text()[-3000:]
            (run,) = wait_for(lambda: [r for r in store.list_runs("shared") if r["state"] == "success"], 60,
                              "the shared run to succeed")
            assert len(store.list_runs("shared")) == 1, "two runs for one @once"
            task_ids = ["gate"] + [f"w{i:03d}" for i in range(WIDTH)]
            instances = {ti["task_id"]: ti for ti in store.get_task_instances(run["id"])}
            assert sorted(instances) == sorted(task_ids)
            assert {ti["state"] for ti in instances.values()} == {"success"}
            tries = Counter(t["task_id"] for t in store.get_tries(run["id"]))
            assert set(tries.values()) == {1}, f"a task with more than one try: {tries.most_common(3)}"
            assert {ti["try_number"] for ti in instances.values()} == {1}
            ran = [line.split() for line in side.read_text().splitlines()]
            per_task = Counter(task for _run, task, _try, _pid in ran)
            assert sorted(per_task) == sorted(task_ids)
            assert set(per_task.values()) == {1}, f"ran twice: {[t for t, n in per_task.items() if n > 1]}"
            pids = Counter(int(pid) for *_rest, pid in ran)
            assert set(pids) == {os.getpid(), daemon.pid}, f"one host did all the work: {pids}"
            hosts = {ti["claimed_by"] for ti in instances.values()}
            assert len(hosts) == 2, hosts
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
