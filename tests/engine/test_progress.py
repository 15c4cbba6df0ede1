"""Progress bars (tqdm.auto) of a backfill and of a big run, as a terminal command shows them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = '''
import sys
from nbflow import DAG, task

with DAG("fan", schedule="@daily", start_date="2024-01-01", timezone="UTC") as dag:
    @task
    def one(i):
        return i

    for i in range(int(sys.argv[1])):
        one.override(task_id=f"t{i:03d}")(i)

what = sys.argv[2]
if what == "test":
    print(dag.test(executor="inline").state)
else:
    print([r.state.value for r in dag.backfill("2024-01-01", "2024-01-03", executor="inline")])
'''


def _run(home: Path, tasks: int, what: str) -> subprocess.CompletedProcess[str]:
    script = home / "fan.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {**os.environ, "NBFLOW_HOME": str(home)}
    return subprocess.run([sys.executable, str(script), str(tasks), what], env=env, capture_output=True,
                          text=True, timeout=120, check=True)


def _frames(stderr: str) -> list[str]:
    return [f for f in stderr.replace("\n", "\r").split("\r") if f.strip()]


def test_a_big_run_shows_a_bar_of_its_tasks(nbflow_home: Path) -> None:
    done = _run(nbflow_home, 60, "test")
    assert done.stdout.strip() == "success"
    last = _frames(done.stderr)[-1]
    assert last.startswith("fan test__") and "100%" in last and "60/60" in last and "task/s" in last


def test_a_small_run_draws_no_bar(nbflow_home: Path) -> None:
    done = _run(nbflow_home, 3, "test")
    assert done.stdout.strip() == "success" and "%|" not in done.stderr


def test_dag_backfill_shows_a_bar_of_its_runs(nbflow_home: Path) -> None:
    done = _run(nbflow_home, 2, "backfill")
    assert done.stdout.strip() == "['success', 'success', 'success']"
    last = _frames(done.stderr)[-1]
    assert last.startswith("fan backfill: 100%") and "3/3" in last and "run/s" in last
