"""nbflow notebook benchmarks: what running a short notebook costs on top of its cells, warm and cold.

    python benchmarks/notebooks.py          # about a minute
    python benchmarks/notebooks.py --runs 9

Warm: on one trivial 4-cell notebook (built with nbformat in a temporary folder), median of the runs
each: bare ``papermill.execute_notebook`` (the baseline), ``run_notebook`` on a cold kernel (no pool),
then, alternated sample by sample (at least 15 of each), ``run_notebook`` with a warm pool (timed
after the pool's kernel answers and the previous sample's kernel has exited) and the same 4 cells
sent to an already running kernel. The warm overhead is the warm run minus the 4 cells on a running
kernel: everything nbflow and papermill add per notebook. Target: under 25 ms.

Cold: a chain of three notebooks (each ``x = 1`` then ``x * 2``) as whole fresh processes, imports
included: ``nbflow dags test`` of a DAG of three ``NotebookOperator`` tasks, against
``papermill.execute_notebook`` called three times in one process, alternated so that both see the
same load (the machine's load average is printed with them). Target: nbflow in at most half of
papermill's time.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

CELLS = ["x = 1", "y = x + 1", "str(y)", "z = [i * i for i in range(100)]"]
TARGET_MS = 25.0
#: the cold chain: nbflow's time at most this share of papermill's
COLD_TARGET = 0.5
CHAIN_CELLS = ["x = 1", "x * 2"]
CHAIN_DAG = """
from datetime import datetime
from nbflow import DAG
from nbflow.operators import NotebookOperator

with DAG("notebook_chain", schedule=None, start_date=datetime(2024, 1, 1)):
    tasks = [NotebookOperator(task_id=f"nb{{i}}", notebook=path) for i, path in enumerate({paths!r})]
    tasks[0] >> tasks[1] >> tasks[2]
"""
PAPERMILL_CHAIN = """
import logging, sys
import papermill
logging.getLogger("papermill").setLevel(logging.WARNING)
for i, path in enumerate(sys.argv[2:]):
    papermill.execute_notebook(path, f"{sys.argv[1]}/pm{i}.ipynb", progress_bar=False)
"""


def build(folder: Path) -> str:
    import nbformat
    from nbformat import v4

    nb = v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [v4.new_code_cell(source) for source in CELLS]
    path = folder / "trivial.ipynb"
    nbformat.write(nb, path)
    return str(path)


def build_chain(folder: Path) -> tuple[list[str], Path]:
    """Three notebooks of the two chain cells and a DAG file running them in a chain."""
    import nbformat
    from nbformat import v4

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(3):
        nb = v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
        nb.cells = [v4.new_code_cell(source) for source in CHAIN_CELLS]
        path = folder / f"chain{i}.ipynb"
        nbformat.write(nb, path)
        paths.append(str(path))
    dag_file = folder / "notebook_chain.py"
    dag_file.write_text(textwrap.dedent(CHAIN_DAG.format(paths=paths)))
    return paths, dag_file


def time_process(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def time_cold_chain(folder: Path, runs: int) -> tuple[list[float], list[float], list[float]]:
    """``(nbflow samples, papermill samples, load averages)``: one fresh process each, alternated."""
    paths, dag_file = build_chain(folder / "chain")
    env = {**os.environ, "NBFLOW_HOME": str(folder / "cold-home")}
    # one run first, not timed: the store is created once, as a user's is, and the files every run
    # reads are in the page cache for both sides
    time_process([sys.executable, "-m", "nbflow", "dags", "test", "notebook_chain", "-f", str(dag_file)], env)
    out = folder / "chain-out"
    out.mkdir(exist_ok=True)
    nbflow_samples, papermill_samples, loads = [], [], []
    for _ in range(runs):
        loads.append(os.getloadavg()[0])
        nbflow_samples.append(time_process([sys.executable, "-m", "nbflow", "dags", "test", "notebook_chain",
                                            "-f", str(dag_file)], env))
        papermill_samples.append(time_process([sys.executable, "-c", PAPERMILL_CHAIN, str(out), *paths], env))
    return nbflow_samples, papermill_samples, loads


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def time_papermill(path: str, folder: Path, runs: int) -> list[float]:
    import papermill

    samples = []
    for i in range(runs):
        started = time.perf_counter()
        papermill.execute_notebook(path, str(folder / f"pm{i}.ipynb"), progress_bar=False)
        samples.append(time.perf_counter() - started)
    return samples


def time_run_notebook(path: str, folder: Path, runs: int) -> list[float]:
    """``run_notebook`` without a pool: a kernel started for each run."""
    from nbflow.notebook import run_notebook

    samples = []
    for i in range(runs):
        started = time.perf_counter()
        result = run_notebook(path, output_path=folder / f"cold{i}" / "trivial.ipynb", pool=None)
        samples.append(time.perf_counter() - started)
        assert result.kernel == "cold", result.kernel
    return samples


def time_warm_and_running(path: str, folder: Path, runs: int) -> tuple[list[float], list[float]]:
    """``(warm pool runs, the 4 cells on an already running kernel)``, alternated sample by sample
    so that both see the same machine: on 2 cores a kernel shutting down or starting beside one
    sample and not the other moved either median by 10 ms between runs of the benchmark."""
    from jupyter_client.manager import start_new_kernel

    from nbflow.notebook import KernelPool, run_notebook
    from nbflow.notebook.pool import wait_for_shutdowns

    pool = KernelPool(size=1)
    km, kc = start_new_kernel(kernel_name="python3")
    warm, running = [], []
    try:
        for i in range(runs):
            pool.warm("python3", wait=True)
            wait_for_shutdowns()  # the kernel of the sample before has exited
            started = time.perf_counter()
            result = run_notebook(path, output_path=folder / f"warm{i}" / "trivial.ipynb", pool=pool)
            warm.append(time.perf_counter() - started)
            assert result.kernel == "warm", result.kernel
            pool.warm("python3", wait=True)
            wait_for_shutdowns()
            started = time.perf_counter()
            for source in CELLS:
                reply = kc.execute_interactive(source, timeout=30, output_hook=lambda msg: None)
                assert reply["content"]["status"] == "ok"
            running.append(time.perf_counter() - started)
    finally:
        pool.shutdown()
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return warm, running


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cold-only", action="store_true", help="only the cold three-notebook chain")
    args = parser.parse_args()
    logging.getLogger("papermill").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        os.environ["NBFLOW_HOME"] = str(folder / "home")
        rows = []
        if not args.cold_only:
            path = build(folder)
            papermill_ms = median_ms(time_papermill(path, folder, args.runs))
            cold_ms = median_ms(time_run_notebook(path, folder, args.runs))
            warm, running = time_warm_and_running(path, folder, max(15, args.runs))
            rows = [
                ("papermill.execute_notebook (baseline)", papermill_ms),
                ("run_notebook, cold kernel (no pool)", cold_ms),
                (f"run_notebook, warm pool (median of {len(warm)})", median_ms(warm)),
                (f"4 cells on a running kernel (median of {len(running)})", median_ms(running)),
            ]
            from nbflow.notebook.pool import wait_for_shutdowns

            wait_for_shutdowns()
        nbflow_cold, papermill_cold, loads = time_cold_chain(folder, args.runs)
    width = 48
    if rows:
        overhead = rows[2][1] - rows[3][1]
        print(f"{'notebook (4 trivial cells), median of ' + str(args.runs):<{width}}{'ms':>9}")
        for name, ms in rows:
            print(f"{name:<{width}}{ms:>9.1f}")
        verdict = "ok" if overhead < TARGET_MS else "MISSED"
        print(f"{'warm overhead per notebook':<{width}}{overhead:>9.1f}   target < {TARGET_MS:g} ms: {verdict}")
        print()
    ratio = statistics.median(nbflow_cold) / statistics.median(papermill_cold)
    print(f"{'3-notebook chain, cold processes, median of ' + str(args.runs):<{width}}{'ms':>9}   samples (s)")
    for name, samples in (("papermill.execute_notebook x3, one process", papermill_cold),
                          ("nbflow dags test", nbflow_cold)):
        print(f"{name:<{width}}{median_ms(samples):>9.0f}   {' '.join(f'{x:.2f}' for x in samples)}")
    verdict = "ok" if ratio <= COLD_TARGET else "MISSED"
    print(f"{'nbflow / papermill':<{width}}{ratio:>9.2f}   target <= {COLD_TARGET:g}: {verdict}")
    print(f"{'load average (1 min) before each pair':<{width}}{statistics.median(loads):>9.2f}   "
          f"{' '.join(f'{x:.1f}' for x in loads)}  on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
