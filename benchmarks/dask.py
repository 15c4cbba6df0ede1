"""nbflow on a Dask cluster: throughput of sleeping tasks against the ideal, and per-task overhead.

    python benchmarks/dask.py            # about a minute on 2 cores
    python benchmarks/dask.py --quick    # smaller sizes, for a smoke check

One LocalCluster of 2 worker processes x 8 threads serves every scenario (started once, before the
clock runs), with ``parallelism`` 32 (twice its threads, as the README advises) and the sleeping
DAG's ``max_active_tasks`` 32 to match. Scenarios:

* ``sleep_500``: 500 independent tasks that each sleep 0.1 s, through ``dag.test(executor=...)``
  (run created, tries claimed and recorded in the store, logs, outputs), against the ideal
  500 x 0.1 s / 16 slots and against bare Dask (``client.map`` of the same sleeps) on the same cluster.
  Target: within 1.25x the ideal.
* ``trivial``: wide and chained runs of trivial tasks, per task, through Dask and through the thread
  executor in the same process: what sending a try to a cluster costs over running it in a thread.
"""

from __future__ import annotations

import os
import sys

# run as a script, this file's folder comes first on sys.path, where "dask" would be this file
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

SLOTS_WORKERS, SLOTS_THREADS = 2, 8
TARGET = 1.25


def nap(seconds: float) -> None:
    time.sleep(seconds)


def noop() -> None:
    return None


def wide(dag_id: str, size: int, fn: Any, max_active_tasks: int = 16, **kwargs: Any) -> Any:
    from nbflow import DAG
    from nbflow.operators import PythonOperator

    with DAG(dag_id, timezone="UTC", max_active_tasks=max_active_tasks) as dag:
        for i in range(size):
            PythonOperator(task_id=f"t{i}", python_callable=fn, op_kwargs=kwargs)
    return dag


def chain(dag_id: str, size: int) -> Any:
    from nbflow import DAG
    from nbflow.operators import PythonOperator

    with DAG(dag_id, timezone="UTC") as dag:
        previous = None
        for i in range(size):
            current = PythonOperator(task_id=f"t{i}", python_callable=noop)
            if previous is not None:
                previous >> current
            previous = current
    return dag


#: CPU seconds this process (the host, with the LocalCluster's scheduler in it) spent in the last timed_run
last_cpu = [0.0]


def timed_run(dag: Any, executor: Any) -> float:
    cpu = time.process_time()
    started = time.perf_counter()
    run = dag.test(executor=executor)
    elapsed = time.perf_counter() - started
    last_cpu[0] = time.process_time() - cpu
    if run.state.value != "success":
        raise SystemExit(f"{dag.dag_id} on {executor}: {run.state.value}: {list(run.errors.items())[:3]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the sleep scenario (default 3): the "
                        "figures of a shared machine vary from run to run")
    args = parser.parse_args()
    sleepers, trivial, chained = (160, 200, 30) if args.quick else (500, 500, 100)
    os.environ["NBFLOW_HOME"] = tempfile.mkdtemp(prefix="nbflow-bench-dask-")

    from nbflow.executors import get_executor

    slots = SLOTS_WORKERS * SLOTS_THREADS
    started = time.perf_counter()
    # twice the cluster's threads in flight, as the README advises: a worker that ends a task starts
    # the next one waiting in Dask's queue without a round trip to this host
    dask = get_executor("dask", 2 * slots, workers=SLOTS_WORKERS, threads_per_worker=SLOTS_THREADS)
    client = dask.client  # type: ignore[attr-defined]
    client.wait_for_workers(SLOTS_WORKERS, timeout=120)
    cluster_up = time.perf_counter() - started
    thread = get_executor("thread", slots)
    rows: list[tuple[str, str, str]] = []
    try:
        timed_run(wide("warm", 32, noop), dask)  # workers import nbflow once, outside the clock
        timed_run(wide("warm_t", 32, noop), thread)

        ideal = sleepers * 0.1 / slots
        rows.append((f"sleep_{sleepers}: ideal ({sleepers} x 0.1 s / {slots} slots)", f"{ideal:.2f} s", ""))
        for attempt in range(1, args.repeat + 1):
            cpu, t0 = time.process_time(), time.perf_counter()
            client.gather(client.map(nap, [0.1] * sleepers, pure=False))
            bare, bare_cpu = time.perf_counter() - t0, time.process_time() - cpu
            # the DAG lets as many tries be in flight as the host keeps on the cluster (its default
            # max_active_tasks, 16, is the cluster's own size: no try would wait in Dask's queue)
            through = timed_run(wide(f"sleep{attempt}", sleepers, nap, max_active_tasks=2 * slots, seconds=0.1), dask)
            ratio = through / ideal
            rows += [
                (f"sleep_{sleepers} #{attempt}: bare Dask (client.map)", f"{bare:.2f} s",
                 f"{bare / ideal:.2f}x ideal; host CPU {bare_cpu / sleepers * 1000:.1f} ms a task"),
                (f"sleep_{sleepers} #{attempt}: nbflow, executor=dask", f"{through:.2f} s",
                 f"{ratio:.2f}x ideal ({'ok' if ratio <= TARGET else 'MISSED'}, target {TARGET}x); "
                 f"host CPU {last_cpu[0] / sleepers * 1000:.1f} ms a try; load {os.getloadavg()[0]:.1f}"),
            ]
        for label, dag in ((f"wide_{trivial}", wide("trivial", trivial, noop)), (f"chain_{chained}", chain("chain", chained))):
            size = len(dag.task_dict)
            per_dask = timed_run(dag, dask) / size * 1000
            per_thread = timed_run(dag, thread) / size * 1000
            rows += [
                (f"{label}: per task, executor=thread", f"{per_thread:.2f} ms", ""),
                (f"{label}: per task, executor=dask", f"{per_dask:.2f} ms",
                 f"+{per_dask - per_thread:.2f} ms over threads"),
            ]
    finally:
        thread.shutdown()
        dask.shutdown()
    width = max(len(r[0]) for r in rows)
    print(f"LocalCluster of {SLOTS_WORKERS} workers x {SLOTS_THREADS} threads up in {cluster_up:.2f} s "
          f"(not counted); parallelism {2 * slots} (dask), {slots} (thread); {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print(f"{'scenario':<{width}}  {'time':>9}  note")
    print(f"{'-' * width}  {'-' * 9}  ----")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>9}  {note}")


if __name__ == "__main__":
    main()
