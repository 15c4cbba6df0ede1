"""``nbflow import-airflow``: an Airflow DAG file's imports pointed at nbflow, shown as a diff, written
only with --write; what nbflow lacks listed with its line; the rewritten file runs under nbflow."""

from __future__ import annotations

import ast
import os
import stat
import textwrap
from pathlib import Path

from cli.conftest import nbflow
from nbflow.cli.airflow_imports import nbflow_names, rewrite_source

#: an Airflow 2/3 DAG file as people write it: names from the old and the new module paths
AIRFLOW_DAG = '''\
from datetime import datetime

from airflow import DAG
from airflow.decorators import task
from airflow.operators.bash import BashOperator
from airflow.operators.dummy import DummyOperator
from airflow.providers.standard.operators.python import (
    PythonOperator,
    ShortCircuitOperator as Gate,
)
from airflow.utils.trigger_rule import TriggerRule

with DAG("moved", start_date=datetime(2024, 1, 1), schedule=None, catchup=False) as d:
    hello = BashOperator(task_id="hello", bash_command="echo hello")
    gate = Gate(task_id="gate", python_callable=lambda: False)
    never = DummyOperator(task_id="never")
    done = DummyOperator(task_id="done", trigger_rule=TriggerRule.ALL_DONE)

    @task
    def double(x: int) -> int:
        return 2 * x

    hello >> gate >> never >> done
    double(21) >> done
'''

#: uses what nbflow does not have: each must be listed with its line, and left in place
UNSUPPORTED = '''\
from airflow.decorators import dag, task
from airflow.hooks.base import BaseHook
from airflow.utils.dates import days_ago
import airflow.utils.dates

@task
def add(x, y):
    return x + y

mapped = add.partial(y=1).expand(x=[1, 2])
'''


def test_the_imports_point_at_nbflow_and_nothing_else_changes(tmp_path: Path) -> None:
    result = rewrite_source(AIRFLOW_DAG, tmp_path / "moved.py")
    assert result.findings == []
    imports = [node for node in ast.parse(result.after).body if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert all(not (node.module or "").startswith("airflow") for node in imports if isinstance(node, ast.ImportFrom))
    assert {(node.module, alias.name, alias.asname) for node in imports if isinstance(node, ast.ImportFrom)
            for alias in node.names} == {
        ("datetime", "datetime", None), ("nbflow", "DAG", None), ("nbflow", "task", None),
        ("nbflow.operators", "BashOperator", None), ("nbflow.operators", "EmptyOperator", "DummyOperator"),
        ("nbflow.operators", "PythonOperator", None), ("nbflow.operators", "ShortCircuitOperator", "Gate"),
        ("nbflow", "TriggerRule", None),
    }
    # everything after the imports is the user's code, untouched
    assert result.after.split("\nwith DAG", 1)[1] == AIRFLOW_DAG.split("\nwith DAG", 1)[1]


def test_what_nbflow_lacks_is_listed_with_its_line_and_left_in_place(tmp_path: Path) -> None:
    result = rewrite_source(UNSUPPORTED, tmp_path / "u.py")
    found = [(finding.line, finding.what) for finding in result.findings]
    assert (2, "BaseHook (from airflow.hooks.base)") in found
    assert (3, "days_ago (from airflow.utils.dates)") in found
    assert (4, "a whole-module import (`import airflow.utils.dates`)") in found
    assert not [what for line, what in found if line == 10]  # dynamic task mapping moves over as it is
    # what nbflow has moved over; what it lacks stays an Airflow import, so loading says so
    assert result.after.splitlines()[:2] == ["from nbflow import dag, task", "from airflow.hooks.base import BaseHook"]
    assert "from airflow.utils.dates import days_ago" in result.after
    days_ago = next(f for f in result.findings if f.what.startswith("days_ago"))
    assert days_ago.describe("u.py").startswith("u.py:3: days_ago (from airflow.utils.dates) is not in nbflow: ")


def test_task_groups_and_labels_move_over(tmp_path: Path) -> None:
    result = rewrite_source("from airflow.decorators import dag, task_group\n"
                            "from airflow.utils.edgemodifier import Label\n", tmp_path / "g.py")
    assert result.findings == []
    assert result.after == "from nbflow import dag, task_group\nfrom nbflow import Label\n"


def test_the_names_come_from_what_nbflow_exports() -> None:
    import nbflow
    import nbflow.operators
    import nbflow.sensors

    names = nbflow_names()
    for module in (nbflow, nbflow.operators, nbflow.sensors):
        assert all(name in names for name in module.__all__)
    assert names["DummyOperator"] == ("nbflow.operators", "EmptyOperator")
    assert "Label" not in names or "Label" in nbflow.__all__


def test_an_import_sharing_its_line_is_not_rewritten_but_named(tmp_path: Path) -> None:
    text = "import os; from airflow import DAG\n"
    result = rewrite_source(text, tmp_path / "x.py")
    assert result.after == text
    assert [finding.line for finding in result.findings] == [1]


def test_the_command_shows_a_diff_and_writes_only_when_asked(tmp_path: Path, nbflow_home: Path) -> None:
    dags = tmp_path / "dags"
    (dags / "nested").mkdir(parents=True)
    moved = dags / "nested" / "moved.py"
    moved.write_text(AIRFLOW_DAG)
    os.chmod(moved, 0o640)
    (dags / "plain.py").write_text("VALUE = 1\n")

    shown = nbflow("import-airflow", str(dags), home=nbflow_home)
    assert "-from airflow.operators.bash import BashOperator" in shown.stdout
    assert "+from nbflow.operators import BashOperator" in shown.stdout
    assert "1 file would be rewritten (add --write to write them)" in shown.stderr
    assert moved.read_text() == AIRFLOW_DAG

    nbflow("import-airflow", str(dags), "--write", home=nbflow_home)
    assert "from airflow" not in moved.read_text()
    assert stat.S_IMODE(moved.stat().st_mode) == 0o640
    assert (dags / "plain.py").read_text() == "VALUE = 1\n"
    assert not [p for p in moved.parent.iterdir() if p.name.startswith(".")]  # no staging file left

    # the rewritten file runs under nbflow with the task states Airflow gives it
    test = nbflow("dags", "test", "moved", "-f", str(moved), home=nbflow_home)
    states = {line.split()[0]: line.split()[1] for line in test.stdout.splitlines()
              if line.split()[:1] in (["hello"], ["gate"], ["never"], ["done"], ["double"])}
    # a short-circuit skips everything downstream, trigger rules included (Airflow's default)
    assert states == {"hello": "success", "gate": "success", "never": "skipped", "done": "skipped",
                      "double": "success"}


def test_the_command_lists_what_is_left_and_exits_1(tmp_path: Path, nbflow_home: Path) -> None:
    path = tmp_path / "u.py"
    path.write_text(UNSUPPORTED)
    out = nbflow("import-airflow", str(path), home=nbflow_home, check=1)
    assert f"{path}:3: days_ago (from airflow.utils.dates) is not in nbflow: " in out.stdout


def test_bad_files_are_named_in_one_line_and_the_others_still_done(tmp_path: Path, nbflow_home: Path) -> None:
    (tmp_path / "broken.py").write_text("from airflow import DAG\ndef oops(:\n")
    (tmp_path / "latin1.py").write_bytes("from airflow import DAG  # caf\xe9\n".encode("latin-1"))
    (tmp_path / "good.py").write_text("from airflow import DAG\n")
    out = nbflow("import-airflow", str(tmp_path), str(tmp_path / "missing"), "--write", home=nbflow_home, check=1)
    assert f"{tmp_path / 'broken.py'}:2: not valid Python" in out.stderr
    assert f"{tmp_path / 'latin1.py'}: not UTF-8 text; left as it is" in out.stderr
    assert f"{tmp_path / 'missing'} does not exist" in out.stderr
    assert "Traceback" not in out.stderr
    assert (tmp_path / "good.py").read_text() == "from nbflow import DAG\n"


def test_an_airflow_file_in_dags_folder_fails_saying_how_to_move_it(nbflow_home: Path) -> None:
    dags = nbflow_home / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    (dags / "legacy.py").write_text(textwrap.dedent(AIRFLOW_DAG))
    out = nbflow("dags", "list-import-errors", home=nbflow_home, check=None)
    assert "legacy.py" in out.stdout
    assert "the file imports Airflow (airflow" in out.stdout
    assert "nbflow import-airflow FILE --write" in out.stdout


#: an Airflow 3 DAG file using much of what nbflow took over: sdk imports, pendulum, Param, setup and
#: teardown, multiple_outputs and xcom_push, a task group, a branch with Labels, an outlet
AIRFLOW3_DAG = '''\
import pendulum

from airflow.sdk import Asset, Label, Param, dag, setup, task, task_group, teardown
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.empty import EmptyOperator

sales = Asset("file:///tmp/nbflow-example-sales.csv")


@dag(schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False,
     params={"region": Param("eu", enum=["eu", "us"])}, tags=["example"])
def airflow3_example():
    @setup
    def create_cluster():
        return "cluster-1"

    @teardown
    def delete_cluster(name):
        print("deleting", name)

    @task(multiple_outputs=True)
    def extract(params=None, ti=None) -> dict[str, int]:
        ti.xcom_push(key="region", value=params["region"])
        return {"rows": 3, "bad": 0}

    @task_group
    def transform(rows):
        @task
        def double(n):
            return n * 2

        @task
        def check(n):
            return n > 0

        return check(double(rows))

    @task.branch
    def choose(ok, ti=None):
        return "load" if ok and ti.xcom_pull(task_ids="extract", key="region") == "eu" else "alert"

    load = BashOperator(task_id="load", bash_command="echo loading {{ params.region }}", outlets=[sales])
    alert = EmptyOperator(task_id="alert")
    done = EmptyOperator(task_id="done", trigger_rule="none_failed_min_one_success")

    cluster = create_cluster()
    rows = extract()
    cluster >> rows
    decision = choose(transform(rows["rows"]))
    rows >> decision  # xcom_pull reads the tasks directly upstream
    decision >> Label("valid") >> load >> done
    decision >> Label("broken") >> alert >> done
    done >> delete_cluster(cluster)


airflow3_example()
'''


def test_an_airflow_3_dag_moved_over_ends_with_airflows_task_states(tmp_path: Path, nbflow_home: Path) -> None:
    path = tmp_path / "example.py"
    path.write_text(AIRFLOW3_DAG)
    moved = nbflow("import-airflow", str(path), "--write", home=nbflow_home)
    assert "is not in nbflow" not in moved.stdout and "from airflow" not in path.read_text()
    test = nbflow("dags", "test", "airflow3_example", "-f", str(path), home=nbflow_home)
    states = {line.split()[0]: line.split()[1] for line in test.stdout.splitlines()
              if len(line.split()) > 2 and line.split()[1] in ("success", "skipped", "failed", "upstream_failed")}
    # what Airflow gives this DAG: the branch takes "valid", the other side is skipped, the join
    # (none_failed_min_one_success) and the teardown run
    assert states == {
        "create_cluster": "success", "extract": "success", "transform.double": "success",
        "transform.check": "success", "choose": "success", "load": "success", "alert": "skipped",
        "done": "success", "delete_cluster": "success",
    }, test.stdout
    assert "SUCCESS" in test.stdout.splitlines()[0]
    with_us = nbflow("dags", "test", "airflow3_example", "-f", str(path), "-c", '{"region": "us"}', home=nbflow_home)
    chosen = {line.split()[0]: line.split()[1] for line in with_us.stdout.splitlines() if line.split()[:1] in (["load"], ["alert"])}
    assert chosen == {"load": "skipped", "alert": "success"}
    refused = nbflow("dags", "test", "airflow3_example", "-f", str(path), "-c", '{"region": "mars"}',
                     home=nbflow_home, check=1)
    assert "param 'region' the value 'mars', which is not allowed" in refused.stderr


#: an Airflow 3 DAG file that maps: over a run-time list, an empty list, an operator's partial, a
#: task group, with a downstream task reading the list of mapped results
AIRFLOW3_MAPPING = '''\
import pendulum

from airflow.sdk import dag, task, task_group
from airflow.providers.standard.operators.bash import BashOperator


@dag(schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False)
def airflow3_mapping():
    @task
    def files():
        return ["a.csv", "bb.csv", "ccc.csv"]

    @task
    def nothing():
        return []

    @task
    def size(name, factor):
        return len(name) * factor

    @task
    def total(sizes):
        return sum(sizes)

    @task
    def never(x):
        return x

    @task_group
    def per_file(name):
        @task
        def read(name):
            return name.upper()

        @task
        def check(text):
            return text.endswith(".CSV")

        return check(read(name))

    total(size.partial(factor=2).expand(name=files()))
    never.expand(x=nothing())
    BashOperator.partial(task_id="echo").expand(bash_command=["echo one", "echo two"])
    per_file.expand(name=files())


airflow3_mapping()
'''


def test_an_airflow_3_dag_that_maps_moved_over_ends_with_airflows_task_states(tmp_path: Path, nbflow_home: Path) -> None:
    path = tmp_path / "mapping.py"
    path.write_text(AIRFLOW3_MAPPING)
    moved = nbflow("import-airflow", str(path), "--write", home=nbflow_home)
    assert "is not in nbflow" not in moved.stdout and "from airflow" not in path.read_text()
    test = nbflow("dags", "test", "airflow3_mapping", "-f", str(path), home=nbflow_home)
    states = {line.split()[0]: line.split()[1] for line in test.stdout.splitlines()
              if len(line.split()) > 2 and line.split()[1] in ("success", "skipped", "failed", "upstream_failed")}
    # Airflow's: the mapped tasks succeed, the one mapped over an empty list is skipped
    assert states == {
        "files": "success", "files__1": "success", "nothing": "success", "size": "success", "total": "success",
        "never": "skipped",
        "echo": "success", "per_file.read": "success", "per_file.check": "success",
    }, test.stdout
    assert "SUCCESS" in test.stdout.splitlines()[0]
    listed = nbflow("tasks", "states", "airflow3_mapping", home=nbflow_home).stdout
    assert "(3 success)" in listed and "(2 success)" in listed


def test_email_operator_moves_over_and_notifiers_say_what_to_use(tmp_path: Path) -> None:
    result = rewrite_source("from airflow.providers.smtp.operators.smtp import EmailOperator\n"
                            "from airflow.providers.apprise.notifications.apprise import AppriseNotifier\n",
                            tmp_path / "mail.py")
    assert result.after.splitlines()[0] == "from nbflow.operators import EmailOperator"
    [finding] = result.findings
    assert finding.what.startswith("AppriseNotifier") and "nbflow.notifications.Notifier" in finding.instead
