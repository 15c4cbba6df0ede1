"""nbflow scheduling benchmarks: task-to-task latency, daemon throughput, scheduling passes, catchup plans.

    python benchmarks/scheduling.py            # everything, about a minute on 2 cores
    python benchmarks/scheduling.py --quick    # smaller sizes, for a smoke check

Each scenario runs in a fresh process with its own NBFLOW_HOME and SQLite store; the baselines are
measured in the same run. Latencies are measured from inside the tasks: every task records
``time.perf_counter()`` when its callable starts and when it is about to return, and the latency
between two tasks of a chain is ``next.start - previous.end``: everything nbflow does between them
(recording the outcome, planning, claiming, writing the store, building the next task's context).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

#: (start, end) of each task, keyed by task number; written by the tasks themselves
STAMPS: dict[int, tuple[float, float]] = {}
#: (start, end) of every task of the throughput scenarios, in the order they ended
LOG: list[tuple[float, float]] = []
PAST = datetime(2024, 1, 1, tzinfo=UTC)


def stamped(i: int) -> None:
    started = time.perf_counter()
    STAMPS[i] = (started, time.perf_counter())


def logged() -> None:
    started = time.perf_counter()
    LOG.append((started, time.perf_counter()))


def noop() -> None:
    return None


# -- shapes -----------------------------------------------------------------------------------------


def chain(dag_id: str, size: int, **dag_args):
    from nbflow import DAG
    from nbflow.operators import PythonOperator

    with DAG(dag_id, timezone="UTC", **dag_args) as dag:
        previous = None
        for i in range(size):
            current = PythonOperator(task_id=f"t{i}", python_callable=stamped, op_kwargs={"i": i})
            if previous is not None:
                previous >> current
            previous = current
    return dag


def wide(dag_id: str, size: int, **dag_args):
    from nbflow import DAG
    from nbflow.operators import PythonOperator

    with DAG(dag_id, timezone="UTC", max_active_tasks=100_000, **dag_args) as dag:
        for i in range(size):
            PythonOperator(task_id=f"w{i}", python_callable=logged)
    return dag


def gaps(size: int) -> list[float]:
    assert len(STAMPS) == size, f"{len(STAMPS)} of {size} tasks ran"
    return [STAMPS[i + 1][0] - STAMPS[i][1] for i in range(size - 1)]


def summary(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"median": statistics.median(ordered), "p95": ordered[int(0.95 * (len(ordered) - 1))],
            "max": ordered[-1], "n": len(ordered)}


# -- scenarios (each in a fresh process) ------------------------------------------------------------


def latency(path: str, executor: str, size: int) -> dict:
    """A chain of ``size`` tasks, run by run_dag or by a Scheduler serving it."""
    if path == "run_dag":
        from nbflow.engine.runs import run_dag

        dag = chain("latency", size)
        run = run_dag(dag, executor=executor)
        assert run.state == "success", run.summary()
    else:
        from nbflow.engine.scheduler import Scheduler

        dag = chain("latency", size, schedule="@once", start_date=PAST)
        scheduler = Scheduler(dags=[dag], executor=executor)
        scheduler.serve(exit_when_idle=True)
        assert len(scheduler.finished_runs) == 1, scheduler.finished_runs
    return summary(gaps(size))


def throughput(path: str, executor: str, size: int, runs: int, warm: bool = False) -> dict:
    """``runs`` runs of a wide DAG of ``size`` trivial tasks.

    The process is warm, as a daemon's is: nbflow's modules are imported and the store exists
    before the clock starts. ``wall`` runs from building the Scheduler (or calling run_dag) to its
    return, creating the runs and their task rows included; ``span`` from the first task's start to
    the last one's end. With ``warm``, the daemon has been up before the clock starts: its executor
    started its workers and ran this DAG once (its scheduled run), as a daemon serving a DAG does.
    """
    import nbflow.executors.inline
    import nbflow.executors.process
    import nbflow.executors.thread  # noqa: F401
    from nbflow.engine.runs import run_dag
    from nbflow.engine.lifecycle import task_rows
    from nbflow.engine.scheduler import Scheduler
    from nbflow.executors import executor_for
    from nbflow.settings import get_settings
    from nbflow.store import Store

    Store.open().close()
    dag = wide("wide", size, schedule="@once", start_date=PAST)
    pool = None
    if warm:
        pool = executor_for(get_settings(), "daemon", executor)
        Scheduler(dags=[dag], executor=pool).serve(exit_when_idle=True)  # its scheduled run, unclocked
        LOG.clear()
    started = time.perf_counter()
    if path == "run_dag":
        assert runs == 1
        run = run_dag(dag, executor=executor)
        assert run.state == "success", run.summary()
    elif runs == 1 and not warm:
        scheduler = Scheduler(dags=[dag], executor=executor)
        scheduler.serve(exit_when_idle=True)
        assert len(scheduler.finished_runs) == 1, scheduler.finished_runs
    else:
        # runs queued as `nbflow dags trigger` would, served by one daemon
        store = Store.open()
        for k in range(runs):
            when = PAST + timedelta(days=k + 1)
            store.create_run(dag_id=dag.dag_id, run_id=f"manual__{k}", run_type="manual", logical_date=when,
                             data_interval_start=when, data_interval_end=when, conf={}, state="queued",
                             task_rows=task_rows(dag))
        scheduler = Scheduler(dags=[dag], executor=pool or executor, store=store, create_runs=False)
        scheduler.serve(exit_when_idle=True)
        store.close()
        assert len(scheduler.finished_runs) == runs, scheduler.finished_runs
    wall = time.perf_counter() - started
    if pool is not None:
        pool.shutdown()
    if executor == "process":
        # the tasks ran in worker processes, whose LOG this process cannot see: ask the store
        store = Store.open()
        tis = [ti for run in store.list_runs(dag.dag_id, limit=None) for ti in store.get_task_instances(run["id"])
               if not warm or run["run_id"].startswith("manual__")]
        store.close()
        done = [ti for ti in tis if ti["state"] == "success"]
        assert len(done) == size * runs, f"{len(done)} of {size * runs} tasks succeeded"
        span = (max(ti["end_date"] for ti in done) - min(ti["start_date"] for ti in done)).total_seconds()
        return {"wall": wall, "span": span, "tasks": size * runs}
    assert len(LOG) == size * runs, f"{len(LOG)} of {size * runs} tasks ran"
    span = max(e for _, e in LOG) - min(s for s, _ in LOG)
    return {"wall": wall, "span": span, "tasks": size * runs}


def scheduling_pass(n_dags: int) -> dict:
    """``n_dags`` DAGs on ``*/5 * * * *``, catchup off: the first tick creates one run each, a later
    tick finds nothing due."""
    from nbflow import DAG
    from nbflow.operators import PythonOperator
    from nbflow.engine.lifecycle import task_rows
    from nbflow.engine.scheduler import Scheduler
    from nbflow.store import Store

    dags = []
    for k in range(n_dags):
        with DAG(f"cron_{k:04d}", schedule="*/5 * * * *", start_date=PAST, catchup=False, timezone="UTC") as dag:
            PythonOperator(task_id="a", python_callable=noop) >> PythonOperator(task_id="b", python_callable=noop)
        dags.append(dag)
    now = datetime.now(UTC)
    scheduler = Scheduler(dags=dags, executor="inline")
    scheduler.start()
    started = time.perf_counter()
    first = scheduler.tick(now)
    first_s = time.perf_counter() - started
    assert len(first.created) == n_dags, len(first.created)
    dispatched_first = first.dispatched
    # drive the runs to their end (still at `now`: nothing new becomes due)
    settle_ticks = 0
    started = time.perf_counter()
    while scheduler.drivers:
        report = scheduler.tick(now)
        assert not report.created
        settle_ticks += 1
    settle_s = time.perf_counter() - started
    idle = []
    for _ in range(20):
        started = time.perf_counter()
        report = scheduler.tick(now)
        idle.append(time.perf_counter() - started)
        assert not report.created and not report.dispatched
    # the same tick when its periodic work falls due: heartbeat (every 5 s), store poll (every 1 s),
    # DAG reload (every 30 s; DAGs given as objects are re-synced only when replaced)
    periodic = []
    for _ in range(5):
        scheduler._due.update(heartbeat=0.0, poll=0.0, reload=0.0)
        started = time.perf_counter()
        report = scheduler.tick(now)
        periodic.append(time.perf_counter() - started)
        assert not report.created
    scheduler.close()
    # baseline: the store writes a pass cannot avoid, one run with its task rows per DAG
    store = Store.open()
    started = time.perf_counter()
    for dag in dags:
        store.create_run(dag_id=dag.dag_id, run_id="manual__baseline", run_type="manual", logical_date=now,
                         data_interval_start=now, data_interval_end=now, conf={}, state="queued",
                         task_rows=task_rows(dag))
    create_s = time.perf_counter() - started
    store.close()
    return {"first": first_s, "dispatched_first": dispatched_first, "settle": settle_s, "settle_ticks": settle_ticks,
            "idle": statistics.median(idle), "periodic": statistics.median(periodic), "create_runs": create_s,
            "dags": n_dags}


def catchup_plan(years: int) -> dict:
    from zoneinfo import ZoneInfo

    import croniter

    from nbflow import DAG
    from nbflow.operators import PythonOperator
    from nbflow.engine.scheduler import Scheduler
    from nbflow.timetables import make_timetable, scheduled_times

    tz = ZoneInfo("Europe/Berlin")
    start = datetime(2015, 1, 1, tzinfo=tz)
    end = start.replace(year=start.year + years)
    result: dict = {}

    started = time.perf_counter()
    timetable = make_timetable("0 0 * * *", tz, start)
    times = scheduled_times(timetable, start, end)
    result["plan"] = time.perf_counter() - started
    result["plan_count"] = len(times)

    # baseline: croniter walking the same years
    started = time.perf_counter()
    it = croniter.croniter("0 0 * * *", start - timedelta(seconds=1))  # start included, as above
    count = 0
    while it.get_next(datetime) <= end:
        count += 1
    result["croniter"] = time.perf_counter() - started
    result["croniter_count"] = count

    # the scheduler's first due date for a DAG starting `years` ago (empty store: no run yet)
    now = end + timedelta(hours=12)
    for catchup in (True, False):
        with DAG(f"daily_{catchup}", schedule="0 0 * * *", start_date=start, catchup=catchup, timezone=tz) as dag:
            PythonOperator(task_id="a", python_callable=noop)
        scheduler = Scheduler(dags=[dag], executor="inline")
        scheduler.start()
        scheduler._first_due(dag, now)  # warm: the first store query of the process
        timings = []
        for _ in range(20):
            started = time.perf_counter()
            due = scheduler._first_due(dag, now)
            timings.append(time.perf_counter() - started)
        scheduler.close()
        key = "catchup" if catchup else "nocatchup"
        result[key] = statistics.median(timings)
        result[key + "_due"] = due.isoformat()
    return result


# -- baselines --------------------------------------------------------------------------------------


def baseline_calls(n: int) -> dict:
    """Two bare calls of the task function in a row: the latency floor of measuring this way."""
    STAMPS.clear()
    for i in range(n):
        stamped(i)
    return summary(gaps(n))


# -- driver -----------------------------------------------------------------------------------------


def child(args: list[str], home: Path) -> dict:
    env = {**os.environ, "NBFLOW_HOME": str(home)}
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise SystemExit(f"benchmark {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


def mark(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--scenario", help=argparse.SUPPRESS)
    parser.add_argument("--params", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.scenario:
        params = json.loads(args.params)
        print(json.dumps(globals()[args.scenario](*params)))
        return

    chain_size = 200 if args.quick else 500
    wide_size = 1_000 if args.quick else 5_000
    n_dags = 200 if args.quick else 1_000
    latency_cases = [(path, executor) for path in ("run_dag", "scheduler") for executor in ("inline", "thread")]
    # "process" is what the nbflow scheduler daemon uses unless told otherwise (executor = auto)
    throughput_cases = [("scheduler", "process", wide_size, 1, True), ("scheduler", "process", wide_size // 5, 5, True),
                        ("scheduler", "process", wide_size, 1, False), ("scheduler", "process", wide_size // 5, 5, False),
                        ("scheduler", "thread", wide_size, 1, False), ("scheduler", "thread", wide_size // 5, 5, False),
                        ("scheduler", "inline", wide_size, 1, False), ("scheduler", "inline", wide_size // 5, 5, False),
                        ("run_dag", "thread", wide_size, 1, False), ("run_dag", "inline", wide_size, 1, False)]

    print(f"nbflow scheduling benchmarks on {os.cpu_count()} cores, Python {sys.version.split()[0]}, SQLite store\n")
    with tempfile.TemporaryDirectory(prefix="nbflow-bench-") as tmp:
        def run(name: str, *params) -> dict:
            home = Path(tmp) / f"{name}-{'-'.join(map(str, params))}"
            return child(["--scenario", name, "--params", json.dumps(params)], home)

        lat = {case: run("latency", *case, chain_size) for case in latency_cases}
        thr = {case: run("throughput", *case) for case in throughput_cases}
        sched = run("scheduling_pass", n_dags)
        plan = run("catchup_plan", 10)
    floor = baseline_calls(chain_size)

    print(f"1. latency from a task's end to its downstream's start, chain of {chain_size} "
          "(measured inside the tasks; target: median < 1 ms in-process, < 2 ms under a daemon with threads)")
    header = f"   {'path':<34} {'median ms':>10} {'p95 ms':>10} {'max ms':>10}  target"
    print(header)
    print("   " + "-" * (len(header) - 3))
    for (path, executor), r in lat.items():
        label = f"run_dag, {executor}" if path == "run_dag" else f"Scheduler.serve daemon, {executor}"
        # targets of issue 11: under 1 ms in-process (run_dag), under 2 ms under a daemon with threads
        target = 0.001 if path == "run_dag" else 0.002 if executor == "thread" else 0.005
        print(f"   {label:<34} {ms(r['median']):>10} {ms(r['p95']):>10} {ms(r['max']):>10}  "
              f"{mark(r['median'] < target)} (< {target * 1000:g} ms)")
    print(f"   {'baseline: two bare calls in a row':<34} {ms(floor['median']):>10} {ms(floor['p95']):>10} "
          f"{ms(floor['max']):>10}")
    print()
    print("2. daemon throughput on trivial Python tasks, Scheduler.serve(exit_when_idle=True), SQLite "
          "(target > 1,000 task instances/s)")
    header = (f"   {'path':<44} {'tasks':>6} {'wall s':>8} {'TI/s wall':>10} {'TI/s tasks':>11}  target")
    print(header)
    print("   " + "-" * (len(header) - 3))
    for (path, executor, size, runs, warm), r in thr.items():
        shape = f"{runs} runs x {size:,}" if runs > 1 else f"1 run x {size:,}"
        label = f"{'daemon' if path == 'scheduler' else 'baseline: run_dag'}, {executor}, {shape}"
        if path == "scheduler" and executor == "process":
            label += " (up) *" if warm else " (cold) **"
        rate = r["tasks"] / r["wall"]
        # the target is the daemon's default executor in a daemon that is up; the rest is context
        target = mark(rate > 1000) if path == "scheduler" and (executor != "process" or warm) else ""
        print(f"   {label:<44} {r['tasks']:>6} {r['wall']:>8.3f} {rate:>10.0f} {r['tasks'] / r['span']:>11.0f}"
              f"  {target}")
    print("   * the daemon's default executor (worker processes) in a daemon that is up: its workers started and")
    print("     the DAG ran once (its scheduled run) before the clock; the runs are then triggered and served")
    print("   ** the same from nothing: the worker processes start, and the DAG is pickled, within the wall time")
    print("   TI/s tasks for processes comes from the store's start and end dates, as the tasks ran elsewhere")
    print("   TI/s wall: from building the Scheduler to serve() returning, in a warm process (runs and their")
    print("   task rows created, everything written); TI/s tasks: from the first task's start to the last one's end")
    print()
    print(f"3. one scheduling pass over {sched['dags']:,} DAGs on '*/5 * * * *' (catchup off, inline executor)")
    print(f"   first tick(now): syncs the DAGs to the store, creates {sched['dags']:,} runs and starts them; it also runs "
          f"{sched['dispatched_first']:,} root tasks inline")
    print(f"     {sched['first']:.3f} s  ({sched['first'] / sched['dags'] * 1000:.3f} ms per DAG)")
    print(f"   ticks that record outcomes and run the rest: {sched['settle_ticks']} ticks, {sched['settle']:.3f} s")
    print(f"   later tick(now), nothing due                         {ms(sched['idle']):>10} ms")
    print(f"   the same, heartbeat + store poll + DAG reload due    {ms(sched['periodic']):>10} ms")
    print(f"   baseline: {sched['dags']:,} bare store.create_run calls (run + 2 task rows each)   "
          f"{sched['create_runs']:.3f} s")
    print()
    print("4. catchup plan of 10 years of daily runs ('0 0 * * *', Europe/Berlin) (target < 1 s)")
    print(f"   timetables.scheduled_times                  {plan['plan_count']:>6} runs  {plan['plan']:.4f} s  "
          f"{mark(plan['plan'] < 1.0)}")
    print(f"   baseline: croniter.get_next over the same   {plan['croniter_count']:>6} runs  {plan['croniter']:.4f} s")
    print(f"   Scheduler._first_due, catchup on            {ms(plan['catchup']):>10} ms  -> {plan['catchup_due']}  "
          f"{mark(plan['catchup'] < 1.0)}")
    print(f"   Scheduler._first_due, catchup off           {ms(plan['nocatchup']):>10} ms  -> {plan['nocatchup_due']}  "
          f"{mark(plan['nocatchup'] < 1.0)}")


if __name__ == "__main__":
    main()
