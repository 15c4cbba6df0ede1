"""``nbflow reports``: a DAG that is not there says why, as every command taking a DAG id does."""

from __future__ import annotations

import textwrap
from pathlib import Path

from cli.conftest import CYCLIC, nbflow, one_line


def test_reports_of_a_dag_whose_file_failed_say_so(home: Path) -> None:
    (home / "dags" / "cyclic.py").write_text(textwrap.dedent(CYCLIC))
    line = one_line(nbflow("reports", "cyclic", home=home, check=1))
    assert line.startswith(f"nbflow: error: DAG 'cyclic' is not available: its file {home / 'dags' / 'cyclic.py'} "
                           "failed to load: CycleError")
    assert nbflow("reports", "etl", home=home).stdout.startswith("etl has no runs yet")
    assert "--limit takes a number of runs from 1, not -1" in one_line(
        nbflow("reports", "etl", "--limit", "-1", home=home, check=1))
