"""Scheduler daemons as real processes: killed with SIGKILL at random moments, two and three at once
on one store, killed by their own tasks. Whatever happens to a host, every task instance ends with
exactly one successful try, no try runs twice (let alone on two hosts at once), no try is missing
from the history, and no task that succeeded runs again."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from waiting import wait_for

from nbflow.store import Store

CHAINS, LENGTH = 5, 40
FAILED_TRIES = ("up_for_retry", "failed")

_TASK_HELPERS = '''
import os
import time
import zlib
from datetime import timedelta
from pathlib import Path

from nbflow import DAG
from nbflow.operators import PythonOperator

SIDE_EFFECTS = {side!r}


def note(ti, started):
    # one line per execution that got to its end: "dag run task try host pid start end", where the
    # host is the label of the daemon the test started (its worker processes inherit it)
    line = (f"{{ti.dag_id}} {{ti.run_id}} {{ti.task_id}} {{ti.try_number}} {{os.environ['CRASH_HOST']}} "
            f"{{os.getpid()}} {{started!r}} {{time.monotonic()!r}}\\n")
    fd = os.open(SIDE_EFFECTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def work(ti):
    started = time.monotonic()
    # 5 to 20 ms, fixed per task, so the run is the same from one test to the next
    time.sleep((5 + zlib.crc32(ti.task_id.encode()) % 16) / 1000)
    note(ti, started)
'''


def _env(home: Path, database_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBFLOW_")}
    env.update(NBFLOW_HOME=str(home), NBFLOW_HEARTBEAT_INTERVAL="0.2", NBFLOW_HOST_STALE_AFTER="1",
               NBFLOW_POLL_INTERVAL="0.2", NBFLOW_DAG_RELOAD_INTERVAL="1")
    env.update(extra)
    if database_url is not None:
        env["NBFLOW_DATABASE_URL"] = database_url
    return env


_labels = iter(range(1_000_000))


def _daemon(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    """A daemon whose tasks write its label (``host`` in the side effects, also ``Popen.label``)."""
    label = f"d{next(_labels)}"
    with log.open("ab") as out:
        daemon = subprocess.Popen([sys.executable, "-m", "nbflow", "scheduler", *args], env={**env, "CRASH_HOST": label},
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    daemon.label = label  # type: ignore[attr-defined]
    return daemon




class Execution(NamedTuple):
    """One execution of a task that got to its end, as its side effect tells it."""

    try_number: int
    host: str
    pid: int
    start: float  # time.monotonic(), one clock for every process of the machine
    end: float


Ran = dict[tuple[str, str, str], list[Execution]]


def _side_effects(path: Path) -> Ran:
    """(dag_id, run_id, task_id) -> its executions, in the order they ended."""
    ran: Ran = defaultdict(list)
    if not path.exists():
        return ran
    for line in path.read_text().splitlines():
        dag_id, run_id, task_id, try_number, host, pid, start, end = line.split()
        ran[(dag_id, run_id, task_id)].append(Execution(int(try_number), host, int(pid), float(start), float(end)))
    return ran


def _overlaps_across_hosts(ran: Ran) -> list[tuple[str, int, Execution, Execution]]:
    """Executions of the same try of the same task on two hosts at the same time."""
    found = []
    for (_dag, _run, task_id), executions in ran.items():
        for i, a in enumerate(executions):
            for b in executions[i + 1:]:
                if a.try_number == b.try_number and a.host != b.host and a.start < b.end and b.start < a.end:
                    found.append((task_id, a.try_number, a, b))
    return found


def _check_run(store: Store, run: dict[str, Any], ran: Ran,
               task_ids: list[str], *, exactly_once: bool) -> dict[str, list[dict[str, Any]]]:
    """The invariants of a finished run; returns each task's tries."""
    assert run["state"] == "success", run
    tis = {ti["task_id"]: ti for ti in store.get_task_instances(run["id"])}
    assert sorted(tis) == sorted(task_ids)
    bad = {t: (ti["state"], (ti["error"] or "")[-300:]) for t, ti in tis.items() if ti["state"] != "success"}
    assert not bad, f"task instances not successful: {bad}"
    tries_by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in store.get_tries(run["id"]):
        tries_by_task[row["task_id"]].append(row)
    for task_id in task_ids:
        tries = sorted(tries_by_task[task_id], key=lambda t: t["try_number"])
        states = [t["state"] for t in tries]
        assert states.count("success") == 1, (task_id, states)
        assert states[-1] == "success", f"{task_id}: a try after its success: {states}"
        assert all(s in FAILED_TRIES for s in states[:-1]), (task_id, states)
        success_try = tries[-1]["try_number"]
        assert tis[task_id]["try_number"] == success_try
        # every try from the first to the last has its row: a claim writes it before the try starts
        assert [t["try_number"] for t in tries] == list(range(1, success_try + 1)), (task_id, tries)
        executions = ran.get((run["dag_id"], run["run_id"], task_id), [])
        numbers = [e.try_number for e in executions]
        assert numbers, f"{task_id} succeeded in the store but never ran"
        # every execution had a try of its own: a try number used twice means an execution
        # that the store does not account for
        assert len(numbers) == len(set(numbers)), f"{task_id} ran the same try twice: {executions}"
        assert numbers == sorted(numbers), f"{task_id} tries ran out of order: {executions}"
        assert numbers[-1] == success_try, f"{task_id} ran after its successful try {success_try}: {executions}"
        recorded = {t["try_number"]: t["state"] for t in tries}
        for n in numbers[:-1]:
            assert recorded.get(n) in FAILED_TRIES, f"{task_id} try {n} ran but is recorded as {recorded.get(n)}"
        if exactly_once:
            assert len(executions) == 1, f"{task_id} ran {len(executions)} times: {executions}"
            assert states == ["success"], (task_id, states)
    return tries_by_task


# -- kill -9 ----------------------------------------------------------------------------------------


def _write_chains_dag(home: Path, side: Path, *, dag_id: str = "crashy", chains: int = CHAINS,
                      length: int = LENGTH, retries: int = 5, work: str = "work", helpers: str = "") -> list[str]:
    """``chains`` chains of ``length`` tasks calling ``work`` (from _TASK_HELPERS or ``helpers``),
    each task retried up to ``retries`` times at once; returns the task ids."""
    folder = home / "dags"
    folder.mkdir(parents=True, exist_ok=True)
    source = _TASK_HELPERS.format(side=str(side)) + textwrap.dedent(helpers) + textwrap.dedent(f'''
        with DAG({dag_id!r}, schedule="@once", start_date="2024-01-01", timezone="UTC", max_active_tasks=32,
                 default_args={{"retries": {retries}, "retry_delay": timedelta(0)}}) as d:
            for c in range({chains}):
                previous = None
                for i in range({length}):
                    op = PythonOperator(task_id=f"c{{c}}_{{i:02d}}", python_callable={work})
                    if previous is not None:
                        previous >> op
                    previous = op
    ''')
    (folder / f"{dag_id}.py").write_text(source)
    return [f"c{c}_{i:02d}" for c in range(chains) for i in range(length)]


def _kill_and_restart(tmp_path: Path, executor: str, seed: int) -> None:
    home = tmp_path / "home"
    side = tmp_path / "side_effects.txt"
    task_ids = _write_chains_dag(home, side)
    env = _env(home)
    log = tmp_path / "daemons.log"
    rng = random.Random(seed)
    kills = rng.choice([3, 4])
    store = None
    daemon = _daemon(env, log, "-e", executor)
    try:
        db = home / "nbflow.db"
        wait_for(db.exists, 30, "the database")
        store = Store(f"sqlite:///{db}", busy_timeout=10)

        def successes() -> int:
            try:
                runs = store.list_runs("crashy", limit=None)
            except Exception:  # the daemon has not created the tables yet
                return 0
            if not runs:
                return 0
            return sum(ti["state"] == "success" for ti in store.get_task_instances(runs[0]["id"]))

        wait_for(lambda: successes() >= 1, 30, "the first task to succeed")
        done_at_kill = []
        for k in range(kills):
            if k:  # let the new host come up and take over before killing it again
                wait_for(lambda: any(h["pid"] == daemon.pid for h in store.list_hosts()), 30, "the new host")
            time.sleep(rng.uniform(0.1, 0.4))
            daemon.send_signal(signal.SIGKILL)
            daemon.wait()  # reaped, so its pid is really gone
            done_at_kill.append(successes())
            daemon = _daemon(env, log, "-e", executor, *(["--exit-when-idle"] if k == kills - 1 else []))
        assert daemon.wait(timeout=60) == 0, log.read_text()[-3000:]
        assert done_at_kill[0] < len(task_ids), "the first kill came after the run had finished"

        (run,) = store.list_runs("crashy", limit=None)
        tries = _check_run(store, run, _side_effects(side), task_ids, exactly_once=False)
        hosts = store.list_hosts()
        assert len(hosts) == kills + 1
        assert sorted(h["state"] for h in hosts) == ["dead"] * kills + ["stopped"], hosts
        lost = [t for rows in tries.values() for t in rows if "WorkerLostError" in (t["error"] or "")]
        # at least one kill caught tasks running (5 chains run side by side, so nearly every one does)
        assert lost, f"no kill caught a running task; successes at each kill: {done_at_kill}"
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        if store is not None:
            store.close()


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_nothing_and_runs_nothing_twice(tmp_path: Path) -> None:
    _kill_and_restart(tmp_path, "thread", seed=20240601)


@pytest.mark.slow
def test_kill_9_with_process_workers(tmp_path: Path) -> None:
    _kill_and_restart(tmp_path, "process", seed=7)


# -- two daemons at once ------------------------------------------------------------------------------


def _write_shared_dags(home: Path, side: Path, gate: Path, start: datetime) -> tuple[list[str], list[str]]:
    folder = home / "dags"
    folder.mkdir(parents=True, exist_ok=True)
    source = _TASK_HELPERS.format(side=str(side)) + textwrap.dedent(f'''
        GATE = {str(gate)!r}


        def wait_for_gate(ti):
            started = time.monotonic()
            deadline = started + 30
            while not os.path.exists(GATE) and time.monotonic() < deadline:
                time.sleep(0.01)
            note(ti, started)


        def slow_work(ti):
            started = time.monotonic()
            time.sleep(0.05)
            note(ti, started)


        with DAG("shared_once", schedule="@once", start_date="2024-01-01", timezone="UTC",
                 max_active_tasks=64) as once:
            gate = PythonOperator(task_id="gate", python_callable=wait_for_gate)
            for i in range(100):
                gate >> PythonOperator(task_id=f"w{{i:03d}}", python_callable=slow_work)

        with DAG("shared_cron", schedule="@daily", start_date={start.isoformat()!r}, timezone="UTC",
                 catchup=True) as cron:
            a = PythonOperator(task_id="a", python_callable=work)
            b = PythonOperator(task_id="b", python_callable=work)
            a >> b
    ''')
    (folder / "shared.py").write_text(source)
    return ["gate"] + [f"w{i:03d}" for i in range(100)], ["a", "b"]


def _two_daemons(tmp_path: Path, database_url: str | None, **extra_env: str) -> None:
    home = tmp_path / "home"
    side, gate = tmp_path / "side_effects.txt", tmp_path / "gate"
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=3)
    once_ids, cron_ids = _write_shared_dags(home, side, gate, start)
    # four slots per host: the 100 tasks take over a second on one host, and the other joins in 0.2 s
    # (no host dies here: a generous stale limit keeps a slow start under load from looking like one)
    env = _env(home, database_url, NBFLOW_PARALLELISM="4", NBFLOW_HOST_STALE_AFTER="15", **extra_env)
    url = database_url or f"sqlite:///{home / 'nbflow.db'}"
    logs = [tmp_path / "daemon0.log", tmp_path / "daemon1.log"]
    daemons = [_daemon(env, log, "--exit-when-idle") for log in logs]
    store = None
    try:
        if database_url is None:
            wait_for((home / "nbflow.db").exists, 30, "the database")
        store = Store(url, busy_timeout=10)

        def both_running() -> bool:
            try:
                hosts = store.list_hosts("running")
            except Exception:  # the tables may not exist yet
                return False
            return {h["pid"] for h in hosts} == {d.pid for d in daemons}

        wait_for(both_running, 30, "both hosts to register")
        gate.write_text("open")
        for daemon, log in zip(daemons, logs):
            assert daemon.wait(timeout=60) == 0, log.read_text()[-3000:]

        ran = _side_effects(side)
        (once_run,) = store.list_runs("shared_once", limit=None)
        _check_run(store, once_run, ran, once_ids, exactly_once=True)
        cron_runs = store.list_runs("shared_cron", limit=None)
        dates = sorted(r["logical_date"] for r in cron_runs)
        expected = [start + timedelta(days=n) for n in range((datetime.now(UTC) - start).days + 1)]
        assert dates == expected and len(expected) == 4
        assert len(dates) == len(set(dates)), "two runs for one logical date"
        assert len({r["run_id"] for r in cron_runs}) == len(cron_runs)
        for run in cron_runs:
            assert run["run_type"] == "scheduled"
            _check_run(store, run, ran, cron_ids, exactly_once=True)
        # nothing ran that the store does not know of
        known = {(r["dag_id"], r["run_id"]) for r in [once_run, *cron_runs]}
        assert {(dag_id, run_id) for dag_id, run_id, _t in ran} <= known
        assert sum(len(v) for v in ran.values()) == len(once_ids) + len(cron_ids) * len(cron_runs)
        # both hosts did some of the 100 tasks
        tis = store.get_task_instances(once_run["id"])
        claimed = Counter(ti["claimed_by"] for ti in tis)
        by_host = Counter(e.host for (dag_id, _r, _t), rows in ran.items() if dag_id == "shared_once" for e in rows)
        assert set(by_host) == {d.label for d in daemons}, f"one host did all the work: {by_host}"
        assert len(claimed) == 2, claimed
        hosts = store.list_hosts()
        assert sorted(h["state"] for h in hosts) == ["stopped", "stopped"]
    finally:
        for daemon in daemons:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
        if store is not None:
            store.close()


@pytest.mark.slow
def test_two_daemons_share_one_sqlite_store(tmp_path: Path) -> None:
    _two_daemons(tmp_path, None)


@pytest.mark.slow
@pytest.mark.cluster
def test_two_daemons_each_with_its_own_dask_cluster_run_every_try_once(tmp_path: Path) -> None:
    # each host starts a LocalCluster of its own; the store's claims still give every try to one
    _two_daemons(tmp_path, None, NBFLOW_EXECUTOR="dask", NBFLOW_DASK_WORKERS="1", NBFLOW_DASK_THREADS_PER_WORKER="4")


@pytest.mark.slow
def test_two_daemons_share_one_postgres_store(tmp_path: Path, postgres_url: str) -> None:
    _two_daemons(tmp_path, postgres_url)


@pytest.mark.slow
def test_two_daemons_share_one_mysql_store(tmp_path: Path, mysql_url: str) -> None:
    _two_daemons(tmp_path, mysql_url)


# -- the crash soak: kill -9 at 20 moments, two and three daemons up ------------------------------------

SOAK_CHAINS, SOAK_LENGTH = 4, 50
#: Kills per backend. 20 takes about 15 s of kills on this 2-core machine; under CI it may be lowered
#: (NBFLOW_TEST_SOAK_KILLS) but stays at 8 or more so that adoptions race with fresh hosts every time.
SOAK_KILLS = max(8, int(os.environ.get("NBFLOW_TEST_SOAK_KILLS", "20")))


SOAK_WORK = '''
def soak_work(ti):
    started = time.monotonic()
    # 60 to 150 ms, fixed per task: long enough for kills to land while tasks run, and for
    # the 50 tasks of a chain to outlast the kills (the run must still be going at the last)
    time.sleep((60 + zlib.crc32(ti.task_id.encode()) % 91) / 1000)
    note(ti, started)
'''


@pytest.mark.slow
def test_crash_soak_kill_9_with_several_daemons_up(tmp_path: Path, store_url: str) -> None:
    """Kill -9 one of the daemons at random moments; after each kill that leaves a single daemon,
    start two at once (so two newcomers race to adopt what the dead one held, and up to three
    run). Thread workers, so each kill takes the tasks it was running with it."""
    home = tmp_path / "home"
    side = tmp_path / "side_effects.txt"
    task_ids = _write_chains_dag(home, side, dag_id="soak", chains=SOAK_CHAINS, length=SOAK_LENGTH, retries=30,
                                 work="soak_work", helpers=SOAK_WORK)
    env = _env(home, store_url, NBFLOW_PARALLELISM="8")
    log = tmp_path / "daemons.log"
    rng = random.Random(20240715)
    live = [_daemon(env, log, "-e", "thread") for _ in range(2)]
    everyone = list(live)
    store = Store(store_url, busy_timeout=10)
    try:
        def run() -> dict[str, Any] | None:
            try:
                runs = store.list_runs("soak", limit=None)
            except Exception:  # the first daemon has not created the tables yet
                return None
            return runs[0] if runs else None

        def successes() -> int:
            current = run()
            if current is None:
                return 0
            return sum(ti["state"] == "success" for ti in store.get_task_instances(current["id"]))

        wait_for(lambda: successes() >= 4, 60, "the first tasks to succeed")
        at_kill = []
        for _ in range(SOAK_KILLS):
            time.sleep(rng.uniform(0.1, 0.4))
            victim = live.pop(rng.randrange(len(live)))
            victim.send_signal(signal.SIGKILL)
            victim.wait()  # reaped, so its pid is really gone
            at_kill.append(successes())
            if len(live) == 1:
                fresh = [_daemon(env, log, "-e", "thread") for _ in range(2)]
                live += fresh
                everyone += fresh
        assert at_kill[-1] < len(task_ids), f"the run ended before the last kill: successes at each kill {at_kill}"

        def finished() -> bool:
            current = run()
            return current is not None and current["state"] in ("success", "failed")

        wait_for(finished, 120, "the run to finish")
        for daemon in live:
            assert daemon.poll() is None, f"daemon {daemon.label} exited: {log.read_text()[-3000:]}"

        ran = _side_effects(side)
        overlaps = _overlaps_across_hosts(ran)
        assert not overlaps, f"the same try ran on two hosts at once: {overlaps[:5]}"
        tries = _check_run(store, run(), ran, task_ids, exactly_once=False)
        lost = [t for rows in tries.values() for t in rows if "WorkerLostError" in (t["error"] or "")]
        assert lost, f"no kill caught a running task; successes at each kill: {at_kill}"
        assert all(t["state"] in FAILED_TRIES for t in lost)
    finally:
        for daemon in everyone:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
        store.close()


# -- a task that kills its own host -------------------------------------------------------------------

_KILLERS = {
    "segfault": "import ctypes; ctypes.string_at(0)",
    "os_exit": "os._exit(3)",
    "sigkill": "import signal; os.kill(os.getpid(), signal.SIGKILL)",
}


def _write_killer_dag(home: Path, side: Path, how: str) -> None:
    source = _TASK_HELPERS.format(side=str(side)) + textwrap.dedent(f'''
        def kill_host_on_first_try(ti):
            started = time.monotonic()
            if ti.try_number == 1:
                {_KILLERS[how]}
            note(ti, started)


        with DAG("killer", schedule="@once", start_date="2024-01-01", timezone="UTC",
                 default_args={{"retries": 1, "retry_delay": timedelta(0)}}) as d:
            PythonOperator(task_id="boom", python_callable=kill_host_on_first_try) >> PythonOperator(
                task_id="after", python_callable=work)
    ''')
    (home / "dags" / "killer.py").write_text(source)


@pytest.mark.slow
@pytest.mark.parametrize("how", sorted(_KILLERS))
def test_a_task_that_kills_its_host_on_try_1_finishes_on_the_other_host(
    tmp_path: Path, store_url: str, how: str
) -> None:
    """Thread workers: the task's first try ends its whole daemon within milliseconds of the run's
    start, while that daemon's first writes are still buffered. The other daemon adopts the task,
    records try 1 as lost and runs try 2."""
    home = tmp_path / "home"
    (home / "dags").mkdir(parents=True)
    side = tmp_path / "side_effects.txt"
    env = _env(home, store_url)
    log = tmp_path / "daemons.log"
    daemons = [_daemon(env, log, "-e", "thread") for _ in range(2)]
    store = Store(store_url, busy_timeout=10)
    try:
        def both_running() -> bool:
            try:
                return {h["pid"] for h in store.list_hosts("running")} == {d.pid for d in daemons}
            except Exception:  # the tables may not exist yet
                return False

        wait_for(both_running, 60, "both hosts to register")
        _write_killer_dag(home, side, how)  # only now, so that the run starts with both hosts up

        def finished() -> dict[str, Any] | None:
            runs = store.list_runs("killer", limit=None)
            return runs[0] if runs and runs[0]["state"] in ("success", "failed") else None

        run = wait_for(finished, 60, "the run to finish")
        dead = [d for d in daemons if d.poll() is not None]
        alive = [d for d in daemons if d.poll() is None]
        assert len(dead) == 1 and len(alive) == 1, [d.returncode for d in daemons]
        expected = {"segfault": -signal.SIGSEGV, "os_exit": 3, "sigkill": -signal.SIGKILL}[how]
        assert dead[0].returncode == expected, log.read_text()[-3000:]
        assert run["state"] == "success", log.read_text()[-3000:]
        tries = store.get_tries(run["id"], "boom")
        assert [(t["try_number"], t["state"]) for t in tries] == [(1, "up_for_retry"), (2, "success")]
        assert "WorkerLostError" in tries[0]["error"] and str(dead[0].pid) in tries[0]["error"]
        ran = _side_effects(side)
        assert [(e.try_number, e.host) for e in ran[("killer", run["run_id"], "boom")]] == [(2, alive[0].label)]
        assert [t["state"] for t in store.get_tries(run["id"], "after")] == ["success"]
    finally:
        for daemon in daemons:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
        store.close()
