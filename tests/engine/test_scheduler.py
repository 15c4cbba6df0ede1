"""The scheduler: due runs (catchup, max_active_runs, end_date, @once, pauses, time zones), event-driven
passes, retries, the daemon as a real process and the in-process host."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_for

import nbflow.engine.scheduler as sched_mod
from nbflow import DAG, task
from nbflow.operators import PythonOperator
from nbflow.engine.sync import sync_dag
from nbflow.engine.lifecycle import task_rows
from nbflow.engine.scheduler import Scheduler
from nbflow.settings import load_settings
from nbflow.store import Store


@pytest.fixture
def settings(nbflow_home: Path, store_url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NBFLOW_DATABASE_URL", store_url)
    # every pass looks at the store, so tests that step with tick(now) see their own changes at once
    monkeypatch.setenv("NBFLOW_POLL_INTERVAL", "0")
    return load_settings()


@pytest.fixture
def store(settings) -> Any:
    opened = Store.open(settings)
    try:
        yield opened
    finally:
        opened.close()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def make_scheduler(settings, store, dags: list[DAG], executor: str = "thread") -> Scheduler:
    return Scheduler(settings=settings, store=store, executor=executor, dags=dags)


def drive(scheduler: Scheduler, now: datetime | None = None, timeout: float = 20.0, check=None) -> None:
    """Tick at a fixed ``now`` (or the real time) until the scheduler has nothing left to do."""
    deadline = time.monotonic() + timeout
    while True:
        scheduler.tick(now)
        if check is not None:
            check()
        if scheduler.idle(now):
            return
        assert time.monotonic() < deadline, f"the scheduler did not become idle: {scheduler._detail()}"
        scheduler._wait(0.02)


def runs_of(store: Store, dag_id: str) -> list[dict[str, Any]]:
    return sorted(store.list_runs(dag_id, limit=None), key=lambda r: r["logical_date"])


def quick_dag(dag_id: str, **kwargs: Any) -> DAG:
    kwargs.setdefault("timezone", "UTC")
    with DAG(dag_id, **kwargs) as d:
        @task
        def work(ds):
            return ds

        work()
    return d


# -- which runs are due -----------------------------------------------------------------------------


def test_no_catchup_creates_only_the_latest_due_run(settings, store) -> None:
    d = quick_dag("nocatch", schedule="@daily", start_date="2024-01-01", catchup=False)
    s = make_scheduler(settings, store, [d])
    try:
        drive(s, utc(2024, 1, 6, 0, 30))
        assert [r["logical_date"] for r in runs_of(store, "nocatch")] == [utc(2024, 1, 6)]
        drive(s, utc(2024, 1, 6, 23, 59))
        assert len(runs_of(store, "nocatch")) == 1
        drive(s, utc(2024, 1, 9, 1))  # three days later: still only the latest
        assert [r["logical_date"] for r in runs_of(store, "nocatch")] == [utc(2024, 1, 6), utc(2024, 1, 9)]
        assert {r["state"] for r in runs_of(store, "nocatch")} == {"success"}
        assert {r["run_type"] for r in runs_of(store, "nocatch")} == {"scheduled"}
    finally:
        s.close()


def test_catchup_creates_every_missed_run_within_max_active_runs(settings, store) -> None:
    d = quick_dag("catch", schedule="@daily", start_date="2024-01-01", catchup=True, max_active_runs=2)
    s = make_scheduler(settings, store, [d])
    now = utc(2024, 1, 6, 0, 30)
    seen_active: list[int] = []

    def check() -> None:
        active = [r for r in store.list_runs("catch", limit=None) if r["state"] in ("queued", "running")]
        seen_active.append(len(active))
        assert len(active) <= 2, [r["run_id"] for r in active]

    try:
        first = s.tick(now)
        assert len(first.created) == 2
        check()
        time.sleep(0.5)  # both runs' only task is done: the next pass ends both runs at once
        assert len(s.tick(now).finished) == 2
        assert not s.idle(now), "four runs are still due"
        drive(s, now, check=check)
        runs = runs_of(store, "catch")
        assert [r["logical_date"] for r in runs] == [utc(2024, 1, day) for day in range(1, 7)]
        assert all(r["state"] == "success" for r in runs)
        assert max(seen_active) == 2
        # the data interval of each run: from the previous scheduled time to its own
        for r in runs:
            assert r["data_interval_end"] == r["logical_date"]
            assert r["data_interval_start"] == r["logical_date"] - timedelta(days=1)
        # nothing more until the next day comes
        drive(s, utc(2024, 1, 6, 23))
        assert len(runs_of(store, "catch")) == 6
    finally:
        s.close()


def test_end_date_stops_creation(settings, store) -> None:
    d = quick_dag("ending", schedule="@daily", start_date="2024-01-01", end_date="2024-01-03", catchup=True)
    s = make_scheduler(settings, store, [d])
    try:
        drive(s, utc(2024, 1, 10))
        assert [r["logical_date"] for r in runs_of(store, "ending")] == [utc(2024, 1, d) for d in (1, 2, 3)]
        drive(s, utc(2024, 2, 1))
        assert len(runs_of(store, "ending")) == 3
    finally:
        s.close()


def test_end_date_without_catchup_creates_no_run_after_it(settings, store) -> None:
    d = quick_dag("ended", schedule="@daily", start_date="2024-01-01", end_date="2024-01-03", catchup=False)
    s = make_scheduler(settings, store, [d])
    try:
        drive(s, utc(2024, 1, 10))
        assert [r["logical_date"] for r in runs_of(store, "ended")] == []
    finally:
        s.close()


def test_once_creates_exactly_one_run_and_none_schedule_none(settings, store) -> None:
    once = quick_dag("once", schedule="@once", start_date="2024-01-01T08:00", catchup=True)
    never = quick_dag("never", schedule=None, start_date="2024-01-01")
    s = make_scheduler(settings, store, [once, never])
    try:
        drive(s, utc(2023, 12, 31))
        assert runs_of(store, "once") == []
        for now in (utc(2024, 1, 1, 8), utc(2024, 1, 2), utc(2025, 1, 1)):
            drive(s, now)
        runs = runs_of(store, "once")
        assert [(r["logical_date"], r["state"]) for r in runs] == [(utc(2024, 1, 1, 8), "success")]
        assert runs_of(store, "never") == []
    finally:
        s.close()
    # a new host (a restart) does not create it again
    s2 = make_scheduler(settings, store, [once, never])
    try:
        drive(s2, utc(2025, 6, 1))
        assert len(runs_of(store, "once")) == 1 and runs_of(store, "never") == []
    finally:
        s2.close()


def test_paused_dag_gets_no_runs_until_unpaused(settings, store) -> None:
    d = quick_dag("pausable", schedule="@daily", start_date="2024-01-01", catchup=True)
    sync_dag(store, d)
    store.set_paused("pausable", True)
    s = make_scheduler(settings, store, [d])
    try:
        drive(s, utc(2024, 1, 3, 12))
        assert runs_of(store, "pausable") == []
        assert store.get_dag("pausable")["is_paused"]  # reloading the DAG keeps it paused
        store.set_paused("pausable", False)
        drive(s, utc(2024, 1, 3, 12))
        assert [r["logical_date"] for r in runs_of(store, "pausable")] == [utc(2024, 1, d) for d in (1, 2, 3)]
        assert {r["state"] for r in runs_of(store, "pausable")} == {"success"}
    finally:
        s.close()


def test_time_zone_schedule_is_evaluated_in_the_dag_zone(settings, store) -> None:
    d = quick_dag("seoul", schedule="0 6 * * *", start_date="2024-03-01", timezone="Asia/Seoul", catchup=False)
    s = make_scheduler(settings, store, [d])
    try:
        # 00:30 UTC on 5 March is 09:30 in Seoul: the 06:00 Seoul run of 5 March is due
        drive(s, utc(2024, 3, 5, 0, 30))
        (run,) = runs_of(store, "seoul")
        assert run["logical_date"] == utc(2024, 3, 4, 21)
        assert run["logical_date"].utcoffset() == timedelta(0)  # stored and read back in UTC
        assert run["data_interval_start"] == utc(2024, 3, 3, 21)
        assert run["data_interval_end"] == utc(2024, 3, 4, 21)
        assert run["state"] == "success"
        # ds inside the task is the local date of the logical date, not the UTC one
        assert json.loads(store.get_outputs(run["id"])["work"]["value_json"]) == "2024-03-05"
        # at 20:59 UTC (05:59 Seoul on the 6th) the next one is not yet due; at 21:00 it is
        drive(s, utc(2024, 3, 5, 20, 59))
        assert len(runs_of(store, "seoul")) == 1
        drive(s, utc(2024, 3, 5, 21))
        assert [r["logical_date"] for r in runs_of(store, "seoul")] == [utc(2024, 3, 4, 21), utc(2024, 3, 5, 21)]
    finally:
        s.close()


def test_task_context_sees_the_data_interval(settings, store) -> None:
    with DAG("interval", schedule="0 */6 * * *", start_date="2024-01-01", timezone="UTC", catchup=False) as d:
        @task
        def show(ds, data_interval_start, data_interval_end, logical_date):
            return [ds, data_interval_start.isoformat(), data_interval_end.isoformat(), logical_date.isoformat()]

        show()
    s = make_scheduler(settings, store, [d])
    try:
        drive(s, utc(2024, 2, 1, 13))
        (run,) = runs_of(store, "interval")
        assert json.loads(store.get_outputs(run["id"])["show"]["value_json"]) == [
            "2024-02-01", "2024-02-01T06:00:00+00:00", "2024-02-01T12:00:00+00:00", "2024-02-01T12:00:00+00:00",
        ]
    finally:
        s.close()


# -- serving ----------------------------------------------------------------------------------------


def _manual_run(store: Store, d: DAG, run_id: str = "manual__1", when: datetime | None = None) -> int:
    sync_dag(store, d)
    when = when or utc(2024, 5, 1)
    return store.create_run(
        dag_id=d.dag_id, run_id=run_id, run_type="manual", logical_date=when,
        data_interval_start=when, data_interval_end=when, conf={}, state="queued", task_rows=task_rows(d),
    )


def test_downstream_starts_without_waiting_for_a_poll(nbflow_home, store_url, monkeypatch) -> None:
    monkeypatch.setenv("NBFLOW_DATABASE_URL", store_url)
    monkeypatch.setenv("NBFLOW_POLL_INTERVAL", "5")
    settings = load_settings()
    assert settings.poll_interval == 5.0
    with DAG("chain20", timezone="UTC") as d:
        ops = [PythonOperator(task_id=f"t{i:02d}", python_callable=lambda: None) for i in range(20)]
        for a, b in zip(ops, ops[1:]):
            a >> b
    with Store.open(settings) as store:
        run_pk = _manual_run(store, d)
        s = Scheduler(settings=settings, store=store, executor="thread", dags=[d])
        started = time.monotonic()
        s.serve(exit_when_idle=True, grace=5)
        elapsed = time.monotonic() - started
        assert store.get_run_by_pk(run_pk)["state"] == "success"
        assert {ti["state"] for ti in store.get_task_instances(run_pk)} == {"success"}
    assert elapsed < 2.0, f"20 chained tasks took {elapsed:.2f} s with a 5 s poll interval"


def test_the_free_slots_go_to_the_oldest_run_in_one_claim_not_one_task_per_run(
    nbflow_home, store_url, monkeypatch
) -> None:
    """With fewer slots free than an even share could use, splitting them made a store claim per
    task and run (several queued runs under a busy daemon: 900 task instances a second instead of
    1,100). The oldest run takes up to MIN_CLAIM of them in one claim; the others follow as
    slots free."""
    import threading

    monkeypatch.setenv("NBFLOW_DATABASE_URL", store_url)
    monkeypatch.setenv("NBFLOW_PARALLELISM", "4")
    settings = load_settings()
    go = threading.Event()
    with DAG("wide6", timezone="UTC") as d:
        for i in range(6):
            PythonOperator(task_id=f"w{i}", python_callable=lambda: go.wait(30))
    with Store.open(settings) as store:
        pks = [_manual_run(store, d, f"manual__{k}", utc(2024, 5, 1 + k)) for k in range(3)]
        s = Scheduler(settings=settings, store=store, executor="thread", dags=[d])
        claims: list[int] = []
        claim = store.claim_task_instances

        def counted(run_pk, task_ids, *args, **kwargs):
            claims.append(len(task_ids))
            return claim(run_pk, task_ids, *args, **kwargs)

        monkeypatch.setattr(store, "claim_task_instances", counted)
        try:
            s.tick()
            running = [sum(ti["state"] == "running" for ti in store.get_task_instances(pk)) for pk in pks]
            assert running == [4, 0, 0] and claims == [4]
        finally:
            go.set()
        drive(s)
        assert [store.get_run_by_pk(pk)["state"] for pk in pks] == ["success"] * 3
        s.close()


def test_a_pass_stops_starting_tasks_after_dispatch_seconds_and_the_next_comes_at_once(
    settings, store, monkeypatch
) -> None:
    """A burst of short tasks kept one pass starting tasks for the whole burst (five runs of 1,000:
    5 s), its outcomes unrecorded and its heartbeat late; past host_stale_after another host would
    have taken this one for dead."""
    monkeypatch.setattr(sched_mod, "DISPATCH_SECONDS", 0.0)
    with DAG("burst", timezone="UTC") as d:
        for i in range(6):
            PythonOperator(task_id=f"b{i}", python_callable=lambda: None)
    pks = [_manual_run(store, d, f"manual__{k}", utc(2024, 5, 1 + k)) for k in range(3)]
    s = make_scheduler(settings, store, [d], executor="inline")
    assert s.tick().dispatched == 3  # one round: a task of each run, then the pass ends
    assert s.next_deadline() <= time.monotonic()  # and the next pass is due now
    drive(s)
    assert [store.get_run_by_pk(pk)["state"] for pk in pks] == ["success"] * 3
    assert not s._more_to_start  # nothing left to start: the next pass is not hurried any more
    s._more_to_start, s._stopping = True, True  # a pass cut short, then the host told to stop
    s.tick()
    assert not s._more_to_start  # it waits for its tries' ends; it does not spin
    s.close()


def test_manual_run_with_retries_under_the_scheduler(settings, store, tmp_path: Path) -> None:
    counter = tmp_path / "count"

    def flaky(path=str(counter)):
        n = int(Path(path).read_text()) + 1 if Path(path).exists() else 1
        Path(path).write_text(str(n))
        if n < 3:
            raise RuntimeError(f"attempt {n} failed")
        return n

    with DAG("retrying", timezone="UTC", default_args={"retries": 3, "retry_delay": timedelta(seconds=0.3)}) as d:
        PythonOperator(task_id="flaky", python_callable=flaky)
    run_pk = _manual_run(store, d)
    s = make_scheduler(settings, store, [d])
    started = time.monotonic()
    s.serve(exit_when_idle=True, grace=5)
    elapsed = time.monotonic() - started
    run = store.get_run_by_pk(run_pk)
    assert run["state"] == "success"
    tries = sorted(store.get_tries(run_pk, "flaky"), key=lambda t: t["try_number"])
    assert [(t["try_number"], t["state"]) for t in tries] == [(1, "up_for_retry"), (2, "up_for_retry"), (3, "success")]
    assert "attempt 2 failed" in tries[1]["error"]
    assert tries[1]["start_date"] - tries[0]["end_date"] >= timedelta(seconds=0.29)
    assert tries[2]["start_date"] - tries[1]["end_date"] >= timedelta(seconds=0.29)
    assert 0.6 <= elapsed < 5
    assert json.loads(store.get_outputs(run_pk)["flaky"]["value_json"]) == 3


def test_manual_run_of_a_paused_dag_waits(settings, store) -> None:
    d = quick_dag("paused_manual", schedule=None)
    run_pk = _manual_run(store, d)
    store.set_paused("paused_manual", True)
    s = make_scheduler(settings, store, [d])
    try:
        for _ in range(3):
            s.tick()
        assert store.get_run_by_pk(run_pk)["state"] == "queued"
        store.set_paused("paused_manual", False)
        drive(s)
        assert store.get_run_by_pk(run_pk)["state"] == "success"
    finally:
        s.close()


# -- the daemon as a real process -------------------------------------------------------------------


def _daemon_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBFLOW_")}
    env.update(NBFLOW_HOME=str(home), NBFLOW_HEARTBEAT_INTERVAL="0.2", NBFLOW_POLL_INTERVAL="0.2",
               NBFLOW_DAG_RELOAD_INTERVAL="1", **extra)
    return env


def _write_dag(home: Path, name: str, source: str) -> None:
    folder = home / "dags"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(source))


def _nbflow(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nbflow", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)




def test_daemon_exit_when_idle_runs_the_due_run(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _write_dag(home, "daily.py", """
        from nbflow import DAG, task

        with DAG("daily_report", schedule="@daily", start_date="2024-01-01", timezone="UTC") as d:
            @task
            def make(ds):
                return ds

            make()
    """)
    done = _nbflow("scheduler", "--exit-when-idle", env=_daemon_env(home))
    assert done.returncode == 0, done.stderr
    with Store(f"sqlite:///{home / 'nbflow.db'}") as store:
        runs = store.list_runs("daily_report", limit=None)
        assert len(runs) == 1
        (run,) = runs
        assert run["run_type"] == "scheduled" and run["state"] == "success"
        assert run["logical_date"] == datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        hosts = store.list_hosts()
        assert [h["state"] for h in hosts] == ["stopped"]


def test_scheduler_status_and_sigterm_lets_the_running_task_finish(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = _daemon_env(home)
    (home / "dags").mkdir(parents=True)
    status = _nbflow("scheduler", "status", env=env)
    assert status.returncode == 3, status.stdout + status.stderr
    marker, gate = tmp_path / "finished", tmp_path / "gate"
    _write_dag(home, "slow.py", f"""
        import time
        from pathlib import Path
        from nbflow import DAG, task

        with DAG("slow", schedule="@once", start_date="2024-01-01", timezone="UTC") as d:
            @task
            def nap():
                deadline = time.monotonic() + 30
                while not Path({str(gate)!r}).exists() and time.monotonic() < deadline:
                    time.sleep(0.01)
                time.sleep(1.0)
                Path({str(marker)!r}).write_text("done")
                return "rested"

            nap()
    """)
    daemon = subprocess.Popen([sys.executable, "-m", "nbflow", "scheduler"], env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with Store(f"sqlite:///{home / 'nbflow.db'}", busy_timeout=10) as store:
            def running_ti():
                runs = store.list_runs("slow", limit=None) if (home / "nbflow.db").exists() else []
                if not runs:
                    return None
                tis = store.get_task_instances(runs[0]["id"])
                return tis[0] if tis and tis[0]["state"] == "running" else None

            ti = wait_for(running_ti, 30, "the task to start")
            status = _nbflow("scheduler", "status", env=env)
            assert status.returncode == 0, status.stdout + status.stderr
            (host,) = store.list_hosts()
            assert host["pid"] == daemon.pid and host["state"] == "running"
            assert host["host_id"] in status.stdout
            assert ti["claimed_by"] == host["host_id"]
            gate.write_text("open")  # the task sleeps 1 s from now: the signal comes in the middle
            daemon.send_signal(signal.SIGTERM)
            out, err = daemon.communicate(timeout=30)
            assert daemon.returncode == 0, err
            assert "finishing running tasks" in err
            assert marker.read_text() == "done"
            runs = store.list_runs("slow", limit=None)
            (ti,) = store.get_task_instances(runs[0]["id"])
            assert ti["state"] == "success", ti
            assert [t["state"] for t in store.get_tries(runs[0]["id"], "nap")] == ["success"]
            (host,) = store.list_hosts()
            assert host["state"] == "stopped" and host["stopped_at"] is not None
        status = _nbflow("scheduler", "status", env=env)
        assert status.returncode == 3, status.stdout + status.stderr
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()


# -- the in-process host ----------------------------------------------------------------------------


def test_in_process_scheduler_runs_in_the_background(nbflow_home: Path, tmp_path: Path) -> None:
    gate = tmp_path / "gate"

    with DAG("background", schedule="@once", start_date="2024-01-01", timezone="UTC") as d:
        @task
        def wait_for_gate(path=str(gate)):
            deadline = time.monotonic() + 20
            while not Path(path).exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            return Path(path).read_text()

        wait_for_gate()
    assert sched_mod.status() == {"running": False}
    Store.open().close()  # the database exists before two threads use it
    started = time.monotonic()
    scheduler = sched_mod.start(dags=[d])
    try:
        assert time.monotonic() - started < 2  # the caller keeps going
        assert sched_mod.start(dags=[d]) is scheduler  # one per process
        with Store.open() as store:
            run = wait_for(lambda: next(iter(store.list_runs("background", limit=None)), None), 20, "the run")
            wait_for(lambda: sched_mod.status().get("running_tasks") == 1, 20, "the task to run")
            report = sched_mod.status()
            assert report["running"] and report["host_id"] == scheduler.host_id
            assert report["runs"] == [run["run_id"]]
            gate.write_text("open")
            wait_for(lambda: store.get_run_by_pk(run["id"])["state"] == "success", 20, "the run to succeed")
            wait_for(lambda: run["run_id"] in sched_mod.status().get("finished_runs", []), 20, "the report")
            thread = sched_mod._kernel["thread"]
        sched_mod.stop()
        assert not thread.is_alive()
        assert sched_mod.status() == {"running": False}
        with Store.open() as store:
            assert [h["state"] for h in store.list_hosts()] == ["stopped"]
    finally:
        gate.write_text("open")
        sched_mod.stop()


def test_clearing_a_task_of_a_run_being_driven_makes_the_scheduler_run_it_again(settings, store) -> None:
    from nbflow.engine import controls

    with DAG("cleared_live", timezone="UTC") as d:
        @task
        def quick():
            return "done"

        @task
        def slow():
            time.sleep(0.6)
            return "slow"

        quick(), slow()
    _manual_run(store, d)
    scheduler = make_scheduler(settings, store, [d])
    deadline = time.monotonic() + 10
    while store.get_task_instance("cleared_live", "manual__1", "quick")["state"] != "success":
        scheduler.tick()
        scheduler._wait(0.02)
        assert time.monotonic() < deadline
    assert scheduler.drivers, "the run should still be driven while slow runs"
    controls.clear(d, run_id="manual__1", task_ids=["quick"], store=store)
    drive(scheduler)
    quick_row = store.get_task_instance("cleared_live", "manual__1", "quick")
    assert quick_row["state"] == "success" and quick_row["try_number"] == 2
    assert store.get_run("cleared_live", "manual__1")["state"] == "success"
    scheduler.close()


def test_a_notebook_recorded_as_a_dag_source_is_loaded_by_a_scheduler_host(settings, store, tmp_path: Path) -> None:
    """%%dag records the notebook as the DAG's source; a daemon elsewhere loads it from there."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    notebook = tmp_path / "elsewhere" / "analysis.ipynb"
    notebook.parent.mkdir()
    nb = new_notebook(cells=[
        new_code_cell("raise RuntimeError('exploration must not run on a scheduler host')"),
        new_code_cell('%%dag from_notebook --schedule "@daily" --timezone UTC --start 2024-01-01\n'
                      "from nbflow import task\n@task\ndef hello():\n    return 'hi'\nhello()"),
    ])
    nbformat.write(nb, notebook)
    store.upsert_dag("from_notebook", fileloc=str(notebook), source_kind="notebook")
    scheduler = Scheduler(settings=settings, store=store, executor="inline")
    scheduler.tick(utc(2024, 1, 1, 12))
    assert "from_notebook" in scheduler.dags
    assert scheduler.dags["from_notebook"].fileloc == str(notebook)
    assert [r["run_id"] for r in runs_of(store, "from_notebook")] == ["scheduled__2024-01-01T00:00:00+00:00"]
    scheduler.close()


# -- the retention janitor ---------------------------------------------------------------------------


def test_the_janitor_deletes_old_runs_in_small_batches_with_their_files(settings, store) -> None:
    from nbflow.engine.runs import run_dag
    from nbflow.paths import safe_path_part

    d = quick_dag("etl")
    made = [run_dag(d, logical_date=utc(2024, 1, day), executor="inline", store=store, settings=settings)
            for day in range(1, 6)]
    logs = [settings.logs_folder / "etl" / safe_path_part(run.run_id) for run in made]
    assert all(folder.is_dir() for folder in logs)
    host = Scheduler(settings=settings, store=store, executor="inline", dags=[d], create_runs=False)
    host.retention_batch_size = 2
    later = datetime.now(UTC) + timedelta(days=31)
    try:
        assert host.tick(datetime.now(UTC)).deleted == []  # nothing is old yet
        host._due["retention"] = 0.0  # the next pass looks again at once (as after retention_interval)
        passes = [host.tick(later).deleted for _ in range(3)]  # a full batch brings the next pass forward
        assert [len(deleted) for deleted in passes] == [2, 2, 0]
        assert host.tick(later).deleted == []  # the next pass is retention_interval away
    finally:
        host.close()
    assert sorted(run_id for deleted in passes for run_id in deleted) == sorted(f"etl/{r.run_id}" for r in made[:4])
    assert [row["run_id"] for row in runs_of(store, "etl")] == [made[4].run_id]  # the last run stays
    assert [folder.exists() for folder in logs] == [False] * 4 + [True]


def test_only_long_lived_hosts_run_the_janitor(settings, store, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Scheduler(settings=settings, store=store, kind="daemon").janitor
    assert Scheduler(settings=settings, store=store, kind="kernel").janitor
    assert not Scheduler(settings=settings, store=store, kind="backfill").janitor
    assert not Scheduler(settings=settings, store=store, kind="test").janitor
    monkeypatch.setenv("NBFLOW_RETENTION_INTERVAL", "0")
    assert not Scheduler(settings=load_settings(), store=store, kind="daemon").janitor


NEW_DAG_FILE = '''
from nbflow import DAG
from nbflow.operators import EmptyOperator

with DAG("just_added", schedule=None, start_date="2024-01-01"):
    EmptyOperator(task_id="only")
'''


def test_a_run_of_a_dag_added_a_moment_ago_starts_promptly(nbflow_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A DAG file dropped into dags_folder and triggered at once (as from the Lab sidebar) starts
    within a poll or two, not at the host's next DAG reload (dag_reload_interval, 30 s)."""
    import threading

    from nbflow.engine import controls
    from nbflow.engine.discovery import collect
    from nbflow.engine.sync import sync

    monkeypatch.setenv("NBFLOW_POLL_INTERVAL", "0.2")
    monkeypatch.setenv("NBFLOW_DAG_RELOAD_INTERVAL", "30")
    settings = load_settings()
    host = Scheduler(settings=settings, executor="thread")
    stop = threading.Event()
    thread = threading.Thread(target=host.serve, args=(stop,), kwargs={"grace": 5}, daemon=True)
    thread.start()
    try:
        # the host has read the (empty) folder: its next reload is a reload interval away
        wait_for(lambda: host._due["reload"] - time.monotonic() > 20, 30, "the host's first load of dags_folder")
        (Path(settings.dags_folder) / "just_added.py").write_text(NEW_DAG_FILE)
        bag = collect([settings.dags_folder])  # what the Jupyter server's catalog records when it lists DAGs
        with Store.open(settings) as store:
            sync(bag, store)
            run_id = controls.trigger(bag.dags["just_added"], store=store)
            queued = time.monotonic()
            row = wait_for(lambda: (r := store.get_run("just_added", run_id))["state"] in ("success", "failed") and r,
                           15, "the run of the new DAG to finish")
        took = time.monotonic() - queued
        assert row["state"] == "success"
        assert took < 5, f"the run waited {took:.1f} s for the host to read its DAG file"
    finally:
        stop.set()
        host.wake()
        thread.join(15)


# -- a bug in one run's bookkeeping ---------------------------------------------------------------


def _two_step(dag_id: str) -> DAG:
    with DAG(dag_id, timezone="UTC", default_args={"retries": 1, "retry_delay": timedelta(0)}) as d:
        @task
        def first() -> int:
            return 1

        @task
        def second(value: int) -> int:
            return value + 1

        second(first())
    return d


def _break_once(monkeypatch: pytest.MonkeyPatch, dag_id: str) -> list[str]:
    """The first outcome handed to a driver of ``dag_id`` raises IllegalTransitionError, as a bug in
    the driver's bookkeeping would: what the host does with it is under test."""
    from nbflow.engine.driver import RunDriver
    from nbflow.errors import IllegalTransitionError

    raised: list[str] = []
    real = RunDriver.handle_many

    def handle_many(self: RunDriver, outcomes: list[Any]) -> None:
        if self.dag.dag_id == dag_id and not raised:
            raised.append(self.run_id)
            raise IllegalTransitionError("task instance", "none", "up_for_retry")
        real(self, outcomes)

    monkeypatch.setattr(RunDriver, "handle_many", handle_many)
    return raised


def test_a_bug_in_one_runs_bookkeeping_costs_a_long_lived_host_that_run_not_itself(
    settings, store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """The daemon serves many runs: one whose driver raises is read again from the store (the try
    whose outcome was lost with the driver counts as failed and is retried), the other runs go on."""
    broken, healthy = _two_step("breaks"), _two_step("healthy")
    broken_pk, healthy_pk = _manual_run(store, broken), _manual_run(store, healthy)
    raised = _break_once(monkeypatch, "breaks")
    s = Scheduler(settings=settings, store=store, executor="thread", dags=[broken, healthy], kind="daemon")
    try:
        drive(s)
    finally:
        s.close()
    assert raised == ["manual__1"]
    assert "met an internal error (IllegalTransitionError" in caplog.text
    for pk in (broken_pk, healthy_pk):
        assert store.get_run_by_pk(pk)["state"] == "success"
        assert {ti["state"] for ti in store.get_task_instances(pk)} == {"success"}
    assert json.loads(store.get_outputs(broken_pk)["second"]["value_json"]) == 2
    # the try whose outcome went with the dropped driver was counted lost, and retried
    lost = sorted((t["try_number"], t["state"]) for t in store.get_tries(broken_pk, "first"))
    assert lost == [(1, "up_for_retry"), (2, "success")]
    assert [t["state"] for t in store.get_tries(healthy_pk, "first")] == ["success"]


def test_in_a_one_run_host_the_same_bug_reaches_the_caller(settings, store, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbflow.errors import IllegalTransitionError

    _break_once(monkeypatch, "breaks_test")
    with pytest.raises(IllegalTransitionError):
        _two_step("breaks_test").test(executor="thread")
