"""Notebooks through the REST API: the parameters of a notebook's parameters cell, and a notebook
put on a schedule (the DAG file ``nbflow schedule`` writes), with paths kept inside the server's root."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import nbformat
import pytest
from nbformat import v4

from jupyter_api import *  # noqa: F403 (the test server's fixtures)
from jupyter_api import Api

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
PARAMETERS = '''%matplotlib inline
region = "north"  # which sales region
days: int = 7
ratio = 0.25
columns = ["a", "b"]  # what to show
limits = {"low": 1, "high": None}
verbose = False
since = date.today()  # computed when the notebook runs
pair = (1, 2)
'''


def make_notebook(path: Path, parameters: str | None = PARAMETERS) -> Path:
    nb = v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    nb.cells.append(v4.new_markdown_cell("# Sales"))
    if parameters is not None:
        cell = v4.new_code_cell(parameters)
        cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nb.cells.append(v4.new_code_cell("print(region)"))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_parameters_of_the_parameters_cell(api: Api, jp_root_dir: Path, server_env: Path) -> None:
    make_notebook(jp_root_dir / "reports" / "sales.ipynb")
    body = api.get("notebooks", "parameters", params={"path": "reports/sales.ipynb"})
    assert body["path"] == "reports/sales.ipynb" and body["kernel_name"] == "python3"
    by_name = {p["name"]: p for p in body["parameters"]}
    assert list(by_name) == ["region", "days", "ratio", "columns", "limits", "verbose", "since", "pair"]
    assert by_name["region"] == {"name": "region", "type": "str", "default": "north", "source": '"north"',
                                 "help": "which sales region"}
    assert (by_name["days"]["type"], by_name["days"]["default"]) == ("int", 7)
    assert (by_name["ratio"]["type"], by_name["ratio"]["default"]) == ("float", 0.25)
    assert (by_name["columns"]["type"], by_name["columns"]["default"], by_name["columns"]["help"]) == (
        "list", ["a", "b"], "what to show")
    assert (by_name["limits"]["type"], by_name["limits"]["default"]) == ("dict", {"low": 1, "high": None})
    assert (by_name["verbose"]["type"], by_name["verbose"]["default"]) == ("bool", False)
    # computed or not plain JSON: the source is kept, the value is not made up
    assert by_name["since"] == {"name": "since", "type": "other", "default": None, "source": "date.today()",
                                "help": "computed when the notebook runs"}
    assert (by_name["pair"]["type"], by_name["pair"]["default"], by_name["pair"]["source"]) == ("other", None, "(1, 2)")
    make_notebook(jp_root_dir / "plain.ipynb", parameters=None)
    assert api.get("notebooks", "parameters", params={"path": "plain.ipynb"})["parameters"] == []


def test_parameters_refuse_paths_outside_the_root(api: Api, jp_root_dir: Path, tmp_path: Path, server_env: Path) -> None:
    make_notebook(tmp_path / "outside.ipynb")  # next to the root, not in it
    for path in ["../../etc/passwd", "../outside.ipynb", "/etc/passwd", str(tmp_path / "outside.ipynb"),
                 "reports/../../outside.ipynb"]:
        response = api.request("GET", "notebooks", "parameters", params={"path": path}, expect=None)
        assert response.code in (403, 404), (path, response.code)
        assert b"root:" not in response.body and b"region" not in response.body
    (jp_root_dir / "escape.ipynb").symlink_to(tmp_path / "outside.ipynb")
    assert api.error("GET", "notebooks", "parameters", params={"path": "escape.ipynb"},
                     expect=403)["error"] == "PathNotAllowedError"
    assert api.error("GET", "notebooks", "parameters", params={"path": "missing.ipynb"}, expect=404)["error"] == "NotFoundError"
    assert api.error("GET", "notebooks", "parameters", expect=404)["error"] == "NotFoundError"
    (jp_root_dir / "notes.txt").write_text("x = 1\n")
    assert api.error("GET", "notebooks", "parameters", params={"path": "notes.txt"}, expect=400)["error"] == "InvalidRequestError"
    broken = make_notebook(jp_root_dir / "broken.ipynb", parameters="x = (\n")
    bad = api.error("GET", "notebooks", "parameters", params={"path": broken.name}, expect=400)
    assert "cell 2" in bad["message"] and "line" in bad["message"]


def test_schedule_writes_the_dag_file_and_the_dag_is_listed(api: Api, jp_root_dir: Path, server_env: Path) -> None:
    notebook = make_notebook(jp_root_dir / "reports" / "sales.ipynb")
    body = api.post("schedule", expect=201, body={
        "path": "reports/sales.ipynb", "cron": "0 7 * * *", "timezone": "Europe/Paris",
        "parameters": {"region": "south", "days": 3, "day": "{{ ds }}"}, "report": "html"})
    dag_file = server_env / "dags" / "report_sales.py"
    assert body["dag_id"] == "report_sales" and body["fileloc"] == str(dag_file)
    text = dag_file.read_text()
    assert "# Generated by `nbflow schedule`" in text and f"notebook=literal({str(notebook)!r})" in text
    assert "schedule='0 7 * * *'" in text and "timezone='Europe/Paris'" in text and "report='html'" in text
    assert "{'region': 'south', 'days': 3, 'day': '{{ ds }}'}" in text
    assert body["schedule_text"] and len(body["next_runs"]) == 5
    assert all(datetime.fromisoformat(t).strftime("%H:%M") == "07:00" for t in body["next_runs_local"])
    listed = {d["dag_id"]: d for d in api.get("dags")["dags"]}
    assert listed["report_sales"]["schedule"] == "0 7 * * *" and listed["report_sales"]["timezone"] == "Europe/Paris"
    assert listed["report_sales"]["tags"] == ["report"]
    assert api.get("dags", "report_sales")["tasks"][0]["kind"] == "notebook"
    # scheduling again rewrites the generated file; a dag_id of one's own choosing works too
    again = api.post("schedule", expect=201, body={"path": "reports/sales.ipynb", "cron": "@hourly", "timezone": "UTC",
                                                   "report": "none", "dag_id": "hourly_sales"})
    assert again["dag_id"] == "hourly_sales" and "report=None" in (server_env / "dags" / "hourly_sales.py").read_text()


def test_schedule_refuses_bad_input_and_writes_nothing(api: Api, jp_root_dir: Path, server_env: Path) -> None:
    make_notebook(jp_root_dir / "sales.ipynb")
    folder = server_env / "dags"
    cron = api.error("POST", "schedule", body={"path": "sales.ipynb", "cron": "0 25 * * *"}, expect=400)
    assert cron["error"] == "ScheduleError" and cron["field"] == "hour"
    assert "timedelta" not in cron["message"] and "cron expression" in cron["message"]
    zone = api.error("POST", "schedule", body={"path": "sales.ipynb", "cron": "@daily", "timezone": "Mars/Base"}, expect=400)
    assert zone["error"] == "TimezoneError"
    assert api.error("POST", "schedule", body={"path": "sales.ipynb"}, expect=400)["error"] == "InvalidRequestError"
    names = api.error("POST", "schedule", body={"path": "sales.ipynb", "cron": "@daily", "parameters": {"1x": 2}}, expect=400)
    assert "1x" in names["message"]
    assert api.error("POST", "schedule", body="{", expect=400)["error"] == "InvalidRequestError"
    assert api.error("POST", "schedule", body={"path": "../../etc/passwd", "cron": "@daily"}, expect=403)
    assert api.error("POST", "schedule", body={"path": "nope.ipynb", "cron": "@daily"}, expect=404)
    nan = api.error("POST", "schedule", body='{"path": "sales.ipynb", "cron": "@daily", "parameters": {"x": NaN}}',
                    expect=400)
    assert nan["error"] == "InvalidRequestError" and "parameter 'x' is nan" in nan["message"]
    hidden = api.error("POST", "schedule", body={"path": "sales.ipynb", "cron": "@daily", "dag_id": "_hidden"}, expect=400)
    assert "starts with '_'" in hidden["message"]
    assert not list(folder.glob("*.py")) and not list(folder.glob(".*"))
    (folder / "report_sales.py").write_text("# my own file\n")
    mine = api.error("POST", "schedule", body={"path": "sales.ipynb", "cron": "@daily"}, expect=409)
    assert mine["error"] == "DagFileConflictError" and mine["path"] == str(folder / "report_sales.py")
    assert (folder / "report_sales.py").read_text() == "# my own file\n"
    (folder / "other.py").write_text("from nbflow import DAG\nwith DAG('taken'):\n    pass\n")
    taken = api.error("POST", "schedule", body={"path": "sales.ipynb", "cron": "@daily", "dag_id": "taken"}, expect=409)
    assert taken["other"].endswith("other.py") and not (folder / "taken.py").exists()


@pytest.mark.parametrize("source, expected", [
    ("n = 3", [("n", "int", 3)]),
    ("a, b = 1, 'x'", [("a", "int", 1), ("b", "str", "x")]),
    ("x = 1\nx = 2.5", [("x", "float", 2.5)]),
    ("when: str = None", [("when", "str", None)]),
    ("rows: list[int] = []", [("rows", "list", [])]),
    ("nan = float('nan')\ninf = 1e999", [("nan", "other", None), ("inf", "float", None)]),
    ("import os\nif True:\n    hidden = 1\ndef f(): pass", []),
])
def test_parameters_are_read_without_running_the_cell(source: str, expected: list[tuple[str, str, object]]) -> None:
    from nbflow.notebook.signature import parse_parameters

    assert [(p.name, p.type, p.default) for p in parse_parameters(source)] == expected
