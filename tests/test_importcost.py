"""nbflow's own commands do without jsonschema's costly optional grammar (nbflow/importcost.py):
a task run by `nbflow dags test` imports papermill without building it, and jsonschema still works."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

DAG_FILE = '''
import sys
from pathlib import Path

from nbflow import DAG
from nbflow.operators import PythonOperator


def probe():
    import jsonschema
    import papermill  # noqa: F401  (nbformat imports jsonschema, as every notebook task does)

    try:
        jsonschema.validate(3, {"type": "string"})
        validates = "no"
    except jsonschema.ValidationError:
        validates = "yes"
    loaded = "loaded" if sys.modules.get("rfc3987_syntax") is not None else "absent"
    Path(OUT).write_text(f"{loaded} {validates}")


with DAG("importcost", schedule=None) as dag:
    PythonOperator(task_id="probe", python_callable=probe)
'''


def test_a_command_runs_notebook_imports_without_the_costly_grammar(tmp_path: Path) -> None:
    home, out = tmp_path / "home", tmp_path / "probe.txt"
    (home / "dags").mkdir(parents=True)
    (home / "dags" / "importcost.py").write_text(textwrap.dedent(DAG_FILE).replace("OUT", repr(str(out))))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBFLOW_")}
    env["NBFLOW_HOME"] = str(home)
    done = subprocess.run([sys.executable, "-m", "nbflow", "dags", "test", "importcost"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert out.read_text() == "absent yes"

