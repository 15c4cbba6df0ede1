"""min_free_memory: a host holds new tasks while the machine's free memory is under it, says why in
its status (the store's host row, ``nbflow scheduler status``), and starts them once it is not."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from nbflow import DAG, task
from nbflow.engine import controls
from nbflow.engine.memguard import MemoryGuard
from nbflow.engine.scheduler import Scheduler
from nbflow.errors import ConfigError
from nbflow.settings import load_settings
from nbflow.store import Store


@pytest.fixture
def settings(nbflow_home: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("NBFLOW_DATABASE_URL", store_url)
    monkeypatch.setenv("NBFLOW_POLL_INTERVAL", "0")
    # above what any machine has free: the kernel and this process hold some of it
    monkeypatch.setenv("NBFLOW_MIN_FREE_MEMORY", "100%")
    return load_settings()


def test_a_host_holds_tasks_while_free_memory_is_under_min_free_memory(settings: Any, nbflow_home: Path) -> None:
    with DAG("held", schedule=None, start_date="2024-01-01", timezone="UTC") as dag:
        @task
        def work() -> int:
            return 1

        work()
    store = Store.open(settings)
    scheduler = Scheduler(settings=settings, store=store, executor="thread", dags=[dag])
    try:
        scheduler.start()
        controls.trigger(dag, store=store)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not scheduler.drivers:
            scheduler.tick()
        assert scheduler.drivers, "the triggered run was not picked up"
        for _ in range(3):
            scheduler.tick()
        free = psutil.virtual_memory()
        assert scheduler.held and "min_free_memory = 100%" in scheduler.held, scheduler._detail()
        assert scheduler._detail()["held"] == scheduler.held
        (driver,) = scheduler.drivers.values()
        assert not driver.running and all(ti["state"] != "success" for ti in store.get_task_instances(driver.run_pk))
        # the host row says why, and so does `nbflow scheduler status`
        scheduler.tick()
        hosts = {h["host_id"]: h for h in store.list_hosts()}
        assert "min_free_memory" in hosts[scheduler.host_id]["detail"]["held"]
        # and the REST API's scheduler status (GET /nbflow/api/scheduler) lists it with its hosts
        from nbflow.jupyter.server.serialize import host

        assert host(hosts[scheduler.host_id], {scheduler.host_id})["held"] == scheduler.held
        env = {**os.environ, "NBFLOW_HOME": str(nbflow_home), "NBFLOW_DATABASE_URL": settings.database_url}
        status = subprocess.run([sys.executable, "-m", "nbflow", "scheduler", "status"], env=env,
                                capture_output=True, text=True, timeout=60)
        assert "holding new tasks: free memory" in status.stdout, (status.stdout, status.stderr)
        assert free.available < free.total

        # memory enough again (here: a threshold the machine meets): the held task runs
        scheduler.memory_guard = MemoryGuard("1MB")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and scheduler.drivers:
            scheduler.tick()
            scheduler._wait(0.02)
        assert scheduler.held is None and not scheduler.drivers
        assert scheduler.finished_runs
    finally:
        scheduler.close()
        store.close()


@pytest.mark.parametrize("value", ["10%", "0", "2GiB", "512MiB", "300MB"])
def test_min_free_memory_takes_a_percentage_or_a_size(value: str, nbflow_home: Path) -> None:
    assert load_settings(env={"NBFLOW_MIN_FREE_MEMORY": value}).min_free_memory == value


@pytest.mark.parametrize("value", ["lots", "110%", "-5%", "2 parsecs"])
def test_a_bad_min_free_memory_is_refused_naming_it(value: str, nbflow_home: Path) -> None:
    with pytest.raises(ConfigError, match="min_free_memory.*percentage of the machine's memory"):
        load_settings(env={"NBFLOW_MIN_FREE_MEMORY": value})
