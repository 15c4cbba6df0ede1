"""nbflow benchmarks: overhead, latency, throughput and memory, against baselines measured in the same run.

    python benchmarks/run.py            # everything, a few minutes on 2 cores
    python benchmarks/run.py --quick    # smaller sizes, for a smoke check
    python benchmarks/run.py --scheduling [--quick]   # the scheduling benchmarks instead (scheduling.py)
    python benchmarks/run.py --graph [--quick]        # the graph view in JupyterLab and Chromium (graph.py)

Each measurement runs in a fresh process with its own NBFLOW_HOME and SQLite store, so peak RSS is
the scenario's own. "per task" is wall time divided by the number of tasks; "marginal" is the slope
between two sizes of the same shape, which removes fixed costs (creating the run, starting workers).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXECUTORS = ["inline", "thread", "process"]


# -- DAG shapes -------------------------------------------------------------------------------------


def noop() -> None:
    return None


def build(shape: str, size: int):
    from nbflow import DAG
    from nbflow.operators import BashOperator, PythonOperator

    with DAG(f"{shape}_{size}", timezone="UTC", max_active_tasks=10_000) as dag:
        if shape == "chain":
            previous = None
            for i in range(size):
                current = PythonOperator(task_id=f"t{i}", python_callable=noop)
                if previous is not None:
                    previous >> current
                previous = current
        elif shape == "fan":
            start = PythonOperator(task_id="start", python_callable=noop)
            end = PythonOperator(task_id="end", python_callable=noop)
            middle = [PythonOperator(task_id=f"m{i}", python_callable=noop) for i in range(size)]
            start >> middle >> end
        elif shape == "wide":
            for i in range(size):
                PythonOperator(task_id=f"w{i}", python_callable=noop)
        elif shape == "bash":
            previous = None
            for i in range(size):
                current = BashOperator(task_id=f"b{i}", bash_command="true")
                if previous is not None:
                    previous >> current
                previous = current
    return dag


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one(shape: str, size: int, executor: str) -> dict:
    """Run one scenario in this (fresh) process and report its figures."""
    from nbflow.engine.runs import run_dag

    started = time.perf_counter()
    dag = build(shape, size)
    built = time.perf_counter() - started
    started = time.perf_counter()
    run = run_dag(dag, executor=executor)
    wall = time.perf_counter() - started
    assert run.state == "success", run.summary()
    return {"wall": wall, "build": built, "tasks": size + (2 if shape == "fan" else 0), "rss": peak_rss_mb()}


def memory_growth(repeats: int) -> dict:
    """RSS along many runs of the same DAG: caches warm up, then finished tasks must not accumulate."""
    from nbflow.engine.runs import run_dag

    dag = build("chain", 100)
    checkpoints = {5, repeats // 2, repeats}
    samples: dict[int, float] = {}
    for i in range(1, repeats + 1):
        run_dag(dag, executor="thread")
        if i in checkpoints:
            samples[i] = current_rss_mb()
    return {"samples": samples, "runs": repeats}


# -- baselines --------------------------------------------------------------------------------------


def baseline_python(n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        noop()
    return (time.perf_counter() - started) / n


def baseline_bash(n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        subprocess.run(["bash", "-c", "true"], check=True)
    return (time.perf_counter() - started) / n


# -- driver -----------------------------------------------------------------------------------------


def child(args: list[str], home: Path) -> dict:
    env = {**os.environ, "NBFLOW_HOME": str(home)}
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise SystemExit(f"benchmark {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def cold_start(home: Path, repeats: int) -> dict:
    """`nbflow dags test` of a chain of 100 as a whole process, imports included."""
    dags = home / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    (dags / "chain.py").write_text(textwrap.dedent('''
        from nbflow import DAG
        from nbflow.operators import PythonOperator

        def noop():
            return None

        with DAG("chain_100", timezone="UTC") as dag:
            previous = None
            for i in range(100):
                current = PythonOperator(task_id=f"t{i}", python_callable=noop)
                if previous is not None:
                    previous >> current
                previous = current
    '''))
    env = {**os.environ, "NBFLOW_HOME": str(home)}
    # the first run writes the bytecode of nbflow's modules, as any first run of an install does; with
    # PYTHONDONTWRITEBYTECODE inherited, every sample would compile edited modules from source again
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    nbflow = [sys.executable, "-m", "nbflow", "dags", "test", "chain_100", "--executor", "inline"]

    def timed(command: list[str]) -> float:
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        return time.perf_counter() - started

    first = timed(nbflow)  # creates the SQLite store
    runs = [timed(nbflow) for _ in range(repeats)]
    python = statistics.median(timed([sys.executable, "-c", "pass"]) for _ in range(repeats))
    imports = statistics.median(
        timed([sys.executable, "-c", "import nbflow.engine.runs, nbflow.store, sqlalchemy"]) for _ in range(repeats)
    )
    return {"first": first, "median": statistics.median(runs), "python": python, "imports": imports}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--scheduling", action="store_true",
                        help="run the scheduling benchmarks (benchmarks/scheduling.py) instead")
    parser.add_argument("--graph", action="store_true",
                        help="run the graph view benchmarks in JupyterLab and Chromium (benchmarks/graph.py) instead")
    parser.add_argument("--one", nargs=3, metavar=("SHAPE", "SIZE", "EXECUTOR"), help=argparse.SUPPRESS)
    parser.add_argument("--memory", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args.one[2])))
        return
    if args.memory:
        print(json.dumps(memory_growth(args.memory)))
        return
    if args.scheduling:
        sys.path.insert(0, str(HERE))
        import scheduling

        scheduling.main(["--quick"] if args.quick else [])
        return
    if args.graph:
        subprocess.run([sys.executable, str(HERE / "graph.py"), *(["--quick"] if args.quick else [])], check=True)
        return

    wide = 2_000 if args.quick else 10_000
    scenarios = [("chain", 100), ("chain", 400), ("fan", 500), ("wide", wide), ("bash", 10), ("bash", 50)]
    print(f"nbflow benchmarks on {os.cpu_count()} cores, Python {sys.version.split()[0]}, SQLite store\n")
    results: dict[tuple[str, int, str], dict] = {}
    with tempfile.TemporaryDirectory(prefix="nbflow-bench-") as tmp:
        for shape, size in scenarios:
            for executor in EXECUTORS:
                home = Path(tmp) / f"{shape}-{size}-{executor}"
                results[(shape, size, executor)] = child(["--one", shape, str(size), executor], home)
        memory = child(["--memory", "60" if args.quick else "160"], Path(tmp) / "memory")
        cold = cold_start(Path(tmp) / "cold", 3 if args.quick else 5)

    py_call = baseline_python(100_000)
    bash_call = baseline_bash(50)
    header = f"{'scenario':<16} {'executor':<8} {'tasks':>6} {'wall s':>8} {'per task ms':>12} {'marginal ms':>12} {'peak RSS MB':>12}"
    print(header)
    print("-" * len(header))
    for shape, size in scenarios:
        for executor in EXECUTORS:
            r = results[(shape, size, executor)]
            marginal = ""
            smaller = {("chain", 400): ("chain", 100), ("bash", 50): ("bash", 10)}.get((shape, size))
            if smaller is not None:
                small = results[(*smaller, executor)]
                marginal = f"{(r['wall'] - small['wall']) / (size - smaller[1]) * 1000:.3f}"
            print(f"{shape + '_' + str(size):<16} {executor:<8} {r['tasks']:>6} {r['wall']:>8.3f} "
                  f"{r['wall'] / r['tasks'] * 1000:>12.3f} {marginal:>12} {r['rss']:>12.1f}")
    print()
    print("baselines, same machine, same run:")
    print(f"  a bare Python call of the same task function    {py_call * 1e6:8.3f} µs")
    bash_marginal = (results[("bash", 50, "inline")]["wall"] - results[("bash", 10, "inline")]["wall"]) / 40
    print(f"  bash -c true through subprocess.run             {bash_call * 1000:8.3f} ms  "
          f"(a bash task, inline, costs {(bash_marginal - bash_call) * 1000:+.3f} ms more)")
    print()
    print("cold start, `nbflow dags test chain_100 --executor inline` as a whole process:")
    print(f"  first run (creates the store) {cold['first']:.3f} s;  median of later runs {cold['median']:.3f} s "
          f"(target < 0.4 s)")
    print(f"  of which: python startup {cold['python']:.3f} s, importing nbflow + SQLAlchemy {cold['imports']:.3f} s")
    print()
    samples = {int(k): v for k, v in memory["samples"].items()}
    runs = memory["runs"]
    half = runs // 2
    print(f"memory, {runs} runs of chain_100 (thread executor) in one process: RSS after 5 runs "
          f"{samples[5]:.1f} MB (caches warming), after {half} runs {samples[half]:.1f} MB, after {runs} "
          f"{samples[runs]:.1f} MB")
    per_thousand = (samples[runs] - samples[half]) / ((runs - half) * 100) * 1000
    print(f"  steady state: {per_thousand:+.3f} MB per 1,000 more finished tasks (target: none)")


if __name__ == "__main__":
    main()
