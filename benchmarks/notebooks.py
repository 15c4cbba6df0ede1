"""nbflow notebook benchmarks: what running a short notebook costs on top of its cells.

    python benchmarks/notebooks.py          # about 15 s
    python benchmarks/notebooks.py --runs 9

On one trivial 4-cell notebook (built with nbformat in a temporary folder), median of the runs each:
bare ``papermill.execute_notebook`` (the baseline), ``run_notebook`` on a cold kernel (no pool),
``run_notebook`` with a warm pool (timed after the pool's kernel answers), and the same 4 cells sent
to an already running kernel. The warm overhead is the warm run minus the 4 cells on a running
kernel: everything nbflow and papermill add per notebook. Target: under 50 ms.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

CELLS = ["x = 1", "y = x + 1", "str(y)", "z = [i * i for i in range(100)]"]
TARGET_MS = 50.0


def build(folder: Path) -> str:
    import nbformat
    from nbformat import v4

    nb = v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [v4.new_code_cell(source) for source in CELLS]
    path = folder / "trivial.ipynb"
    nbformat.write(nb, path)
    return str(path)


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


def time_run_notebook(path: str, folder: Path, runs: int, warm: bool) -> list[float]:
    from nbflow.notebook import KernelPool, run_notebook

    pool = KernelPool(size=1) if warm else None
    samples = []
    try:
        for i in range(runs):
            if pool is not None:
                pool.warm("python3", wait=True)
            started = time.perf_counter()
            result = run_notebook(path, output_path=folder / f"{'warm' if warm else 'cold'}{i}" / "trivial.ipynb", pool=pool)
            samples.append(time.perf_counter() - started)
            assert result.kernel == ("warm" if warm else "cold"), result.kernel
    finally:
        if pool is not None:
            pool.shutdown()
    return samples


def time_running_kernel(runs: int) -> list[float]:
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    samples = []
    try:
        for _ in range(runs):
            started = time.perf_counter()
            for source in CELLS:
                reply = kc.execute_interactive(source, timeout=30, output_hook=lambda msg: None)
                assert reply["content"]["status"] == "ok"
            samples.append(time.perf_counter() - started)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("papermill").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        os.environ["NBFLOW_HOME"] = str(folder / "home")
        path = build(folder)
        rows = [
            ("papermill.execute_notebook (baseline)", median_ms(time_papermill(path, folder, args.runs))),
            ("run_notebook, cold kernel (no pool)", median_ms(time_run_notebook(path, folder, args.runs, warm=False))),
            ("run_notebook, warm pool", median_ms(time_run_notebook(path, folder, args.runs, warm=True))),
            ("4 cells on a running kernel", median_ms(time_running_kernel(args.runs))),
        ]
        from nbflow.notebook.pool import wait_for_shutdowns

        wait_for_shutdowns()
    overhead = rows[2][1] - rows[3][1]
    width = max(len(name) for name, _ in rows) + 2
    print(f"{'notebook (4 trivial cells), median of ' + str(args.runs):<{width}}{'ms':>9}")
    for name, ms in rows:
        print(f"{name:<{width}}{ms:>9.1f}")
    verdict = "ok" if overhead < TARGET_MS else "MISSED"
    print(f"{'warm overhead per notebook':<{width}}{overhead:>9.1f}   target < {TARGET_MS:g} ms: {verdict}")


if __name__ == "__main__":
    main()
