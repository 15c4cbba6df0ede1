"""Task instances through the REST API: details, logs followed by offset while the task runs,
outputs, a NotebookOperator's executed notebook and HTML report (a real papermill run), and files
that the API refuses to serve because the store points outside NBFLOW_HOME."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbformat import v4

from jupyter_api import *  # noqa: F403 (the test server's fixtures)
from jupyter_api import Api, wait_for
from nbflow.store import Store

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
SECRET = "the secret outside NBFLOW_HOME"


@pytest.fixture
def jp_root_dir(tmp_path: Path) -> Path:
    """The server's root is the test's folder, NBFLOW_HOME inside it: output notebooks get a Lab path."""
    return tmp_path


def report_notebook(path: Path) -> Path:
    nb = v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    parameters = v4.new_code_cell("rows = []  # the rows to add up\ntitle = 'Report'")
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [parameters, v4.new_markdown_cell("A report."),
                v4.new_code_cell("total = sum(rows)\nprint(f'{title}: {total}')\nimport nbflow\nnbflow.output('total', total)")]
    nbformat.write(nb, path)
    return path


@pytest.fixture
def dags(server_env: Path, tmp_path: Path) -> Path:
    notebook = report_notebook(tmp_path / "report.ipynb")
    (server_env / "dags" / "tasks.py").write_text(textwrap.dedent(f'''
        import time

        from nbflow import DAG, task
        from nbflow.operators import NotebookOperator

        with DAG("slow", timezone="UTC"):
            @task
            def talk():
                for i in range(6):
                    print(f"line {{i}} é", flush=True)
                    time.sleep(0.3)
                return {{"said": 6}}

            talk()

        with DAG("nb", timezone="UTC"):
            NotebookOperator(task_id="report", notebook={str(notebook)!r},
                             parameters={{"rows": [4, 5], "title": "Sales"}}, report="html")
    '''))
    return server_env / "dags"


def run_to_end(api: Api, dag_id: str, timeout: float = 120) -> str:
    run_id = api.post("dags", dag_id, "runs", body={"conf": {}}, expect=201)["run"]["run_id"]
    wait_for(lambda: api.get("dags", dag_id, "runs", run_id)["state"] in ("success", "failed"), timeout,
             f"run {run_id} of {dag_id}")
    return run_id


def test_a_running_task_log_is_followed_by_offset(api: Api, dags: Path) -> None:
    run_id = api.post("dags", "slow", "runs", body={}, expect=201)["run"]["run_id"]
    task = ("dags", "slow", "runs", run_id, "tasks", "talk")
    offset, text, polls, while_running = 0, "", 0, 0
    while True:
        body = api.get(*task, "log", params={"offset": offset})
        assert body["offset"] >= offset
        if body["text"] and not body["complete"]:
            while_running += 1
        text += body["text"]
        offset = body["offset"]
        polls += 1
        if body["complete"]:
            break
        assert polls < 400, "the log never completed"
        api.run_loop(0.1)
    assert while_running >= 2, "the log was not followed while the task ran"
    for i in range(6):
        assert f"line {i} é" in text
    path = Path(body["path"])
    assert text == path.read_text(encoding="utf-8") and offset == path.stat().st_size
    assert path.is_relative_to(dags.parent / "logs")
    # read again from the start, and from the end: nothing is lost or repeated
    again = api.get(*task, "log")
    assert again["text"] == text and again["complete"] is True
    assert api.get(*task, "log", params={"offset": offset}) == {"text": "", "offset": offset, "complete": True,
                                                                 "path": body["path"]}
    assert api.get(*task, "log", params={"try": 1, "offset": 0})["text"] == text
    assert api.get(*task, "log", params={"try": 0})["text"] == text  # 0: the current try
    detail = api.get(*task)
    assert detail["state"] == "success" and detail["kind"] == "python" and detail["try_number"] == 1
    assert [t["try_number"] for t in detail["tries"]] == [1] and detail["tries"][0]["has_log"] is True
    # measured in the worker process that ran it: a Python interpreter holds megabytes
    assert detail["tries"][0]["peak_rss"] > 4 * 1024 * 1024, detail["tries"]
    assert detail["output_preview"] == "{'said': 6}" and detail["notebook"] is None
    assert api.get(*task, "output") == {"value": {"said": 6}, "preview": "{'said': 6}", "kind": "json", "type": "dict",
                                        "size": len('{"said":6}'), "preview_stored": True}
    assert detail["output"] == {"preview": "{'said': 6}", "kind": "json", "type": "dict", "size": 10,
                                "preview_stored": True}


def test_a_notebook_task_serves_its_notebook_and_sandboxed_report(api: Api, dags: Path, tmp_path: Path) -> None:
    run_id = run_to_end(api, "nb")
    task = ("dags", "nb", "runs", run_id, "tasks", "report")
    detail = api.get(*task)
    assert detail["state"] == "success", detail
    assert detail["kind"] == "notebook" and detail["operator"] == "NotebookOperator"
    notebook = detail["notebook"]
    output = Path(notebook["output_path"])
    assert output.is_file() and output.is_relative_to(dags.parent / "artifacts" / "nb")
    assert notebook["report_path"] == str(output.with_suffix(".html"))
    assert notebook["lab_path"] == output.relative_to(tmp_path).as_posix()
    assert detail["progress"]["cell"] == detail["progress"]["cells"]
    assert api.get(*task, "output")["value"] == {"total": 9}

    ipynb = api.request("GET", *task, "notebook")
    assert ipynb.headers["Content-Type"].startswith("application/x-ipynb+json")
    executed = nbformat.reads(ipynb.body.decode(), as_version=4)
    assert any("Sales: 9" in "".join(o.get("text", "")) for c in executed.cells for o in c.get("outputs", []))
    html = api.request("GET", *task, "notebook", params={"format": "html"})
    assert html.headers["Content-Type"].startswith("text/html") and b"Sales: 9" in html.body
    report = api.request("GET", *task, "report")
    assert report.headers["Content-Type"].startswith("text/html") and b"Sales: 9" in report.body
    for response in (report, html):
        policy = response.headers["Content-Security-Policy"]
        assert policy.startswith("sandbox") and "allow-scripts" not in policy and "script-src" not in policy
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def _point_outside(dag_id: str, run_id: str, task_id: str, *, log: str | None = None, artifact: str | None = None) -> None:
    """Make the store say that a task's files live somewhere they must never be read from."""
    with Store.open() as store:
        run = store.get_run(dag_id, run_id)
        if log is not None:
            store.record(run["id"], task_changes=[{"task_id": task_id, "log_path": log}])
        if artifact is not None:
            store.record(run["id"], outputs=[{"task_id": task_id, "value_json": None, "artifact_path": artifact,
                                              "size": 10}])


@pytest.mark.parametrize("escape", ["absolute", "dotdot", "symlink"])
def test_files_the_store_points_outside_nbflow_home_are_refused(api: Api, dags: Path, tmp_path: Path,
                                                                  escape: str) -> None:
    run_id = run_to_end(api, "slow")
    secret = tmp_path / "secret.txt"  # under the server's root, but outside NBFLOW_HOME
    secret.write_text(SECRET + "\n")
    pickled = tmp_path / "secret.pickle"
    pickled.write_bytes(pickle.dumps("danger!"))
    home = dags.parent
    if escape == "absolute":
        log, artifact = str(secret), str(pickled)
    elif escape == "dotdot":
        log = str(home / "logs" / ".." / ".." / "secret.txt")
        artifact = str(home / "artifacts" / ".." / ".." / "secret.pickle")
    else:
        (home / "logs" / "link.log").symlink_to(secret)
        (home / "artifacts").mkdir(exist_ok=True)
        (home / "artifacts" / "link.pickle").symlink_to(pickled)
        log, artifact = str(home / "logs" / "link.log"), str(home / "artifacts" / "link.pickle")
    _point_outside("slow", run_id, "talk", log=log, artifact=artifact)
    task = ("dags", "slow", "runs", run_id, "tasks", "talk")
    for parts in [(*task, "log"), (*task, "output")]:
        response = api.request("GET", *parts, expect=403)
        assert SECRET.encode() not in response.body and b"danger" not in response.body
        assert json.loads(response.body)["error"] == "PathNotAllowedError"
    detail = api.get(*task)  # the details still answer, without reading the file
    assert "danger" not in json.dumps(detail) and SECRET not in json.dumps(detail)


def test_a_notebook_named_outside_nbflow_home_by_a_log_is_refused(api: Api, dags: Path, tmp_path: Path) -> None:
    run_id = run_to_end(api, "slow")
    outside = tmp_path / "elsewhere.ipynb"
    nb = v4.new_notebook()
    nb.cells.append(v4.new_markdown_cell(SECRET))
    nbformat.write(nb, outside)
    (tmp_path / "elsewhere.html").write_text(f"<p>{SECRET}</p>")
    log = dags.parent / "logs" / "forged.log"
    log.write_text(f"nbflow: output notebook {outside}\nnbflow: report {tmp_path / 'elsewhere.html'}\n")
    _point_outside("slow", run_id, "talk", log=str(log))
    task = ("dags", "slow", "runs", run_id, "tasks", "talk")
    for parts, params in [((*task, "notebook"), None), ((*task, "notebook"), {"format": "html"}), ((*task, "report"), None)]:
        response = api.request("GET", *parts, params=params, expect=403)
        assert SECRET.encode() not in response.body
        assert response.headers["Content-Type"].startswith("application/json")


def test_log_of_a_task_that_has_not_run(api: Api, dags: Path) -> None:
    api.patch("dags", "slow", body={"is_paused": True})  # queued, never started
    run_id = api.post("dags", "slow", "runs", body={}, expect=201)["run"]["run_id"]
    body = api.get("dags", "slow", "runs", run_id, "tasks", "talk", "log")
    assert body == {"text": "", "offset": 0, "complete": False, "path": None}
    # a client that asks for try 1 before there is one keeps polling: nothing is complete yet
    first = api.get("dags", "slow", "runs", run_id, "tasks", "talk", "log", params={"try": 1})
    assert first == {"text": "", "offset": 0, "complete": False, "path": None}
    assert api.error("GET", "dags", "slow", "runs", run_id, "tasks", "talk", "log", params={"offset": -1},
                     expect=400)["error"] == "InvalidRequestError"


HOSTILE_DAG = '''
import os
import shlex

from nbflow import DAG, task

MARKER = {marker!r}


class Boom:
    """Unpickling it runs a shell command: whoever unpickles this output creates MARKER."""

    def __reduce__(self):
        return (os.system, ("touch " + shlex.quote(MARKER),))

    def __repr__(self):
        return "Boom(" + "x" * 10000 + ")"


with DAG("hostile", timezone="UTC"):
    @task
    def make():
        return Boom()

    make()
'''


@pytest.fixture
def hostile(server_env: Path, tmp_path: Path) -> Path:
    """A DAG whose task returns an object that runs code when unpickled; the path of its marker."""
    marker = tmp_path / "PWNED"
    (server_env / "dags" / "hostile.py").write_text(HOSTILE_DAG.format(marker=str(marker)))
    return marker


def test_a_pickled_output_is_shown_from_its_stored_preview_never_unpickled(hostile: Path, server_env: Path,
                                                                           api: Api) -> None:
    run_id = run_to_end(api, "hostile")
    task = ("dags", "hostile", "runs", run_id, "tasks", "make")
    detail = api.get(*task)
    assert detail["state"] == "success", detail
    preview = detail["output_preview"]
    assert preview.startswith("Boom(xxx") and "..." in preview and len(preview) <= 4096
    from nbflow.engine.discovery import module_name

    assert detail["output"]["type"] == f"{module_name(server_env / 'dags' / 'hostile.py')}.Boom"
    assert detail["output"]["kind"] == "pickle" and detail["output"]["size"] > 0 and detail["output"]["preview_stored"]
    output = api.get(*task, "output")
    assert output == {"value": None, **detail["output"]}
    assert not hostile.exists(), "the server unpickled the output"

    # an output stored before previews were (no preview columns set): a line says so, still unread
    with Store.open() as store:
        run = store.get_run("hostile", run_id)
        row = store.get_outputs(run["id"])["make"]
        store.record(run["id"], outputs=[{**row, "kind": None, "type_name": None, "preview": None}])
    old = api.get(*task, "output")
    assert old["value"] is None and old["preview_stored"] is False and old["kind"] == "pickle"
    assert old["preview"].startswith("(no preview stored: a pickle output of")
    assert api.get(*task)["output_preview"] == old["preview"]
    assert not hostile.exists(), "the server unpickled the output"

    from nbflow.outputs import load_value

    assert load_value(row)[0] and hostile.exists()  # the marker works: unpickling does create it


CAPPED_DAG = '''
import os
import time

from nbflow import DAG, task

GO = {go!r}

with DAG("capped", timezone="UTC"):
    @task
    def talk():
        for i in range(100):
            print(f"early {{i}}", flush=True)
        deadline = time.monotonic() + 60
        while not os.path.exists(GO) and time.monotonic() < deadline:  # the test has read the head
            time.sleep(0.02)
        for i in range(100_000):
            print(f"late {{i}}")
        return 1

    talk()
'''


@pytest.fixture
def capped(server_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DAG whose task prints about 1 MB under max_log_bytes = 10 KiB, the rest once ``go`` exists."""
    monkeypatch.setenv("NBFLOW_MAX_LOG_BYTES", "10240")
    go = tmp_path / "go"
    (server_env / "dags" / "capped.py").write_text(CAPPED_DAG.format(go=str(go)))
    return go


def test_a_capped_log_is_followed_by_offset_and_read_by_the_cli(capped: Path, server_env: Path, api: Api) -> None:
    run_id = api.post("dags", "capped", "runs", body={}, expect=201)["run"]["run_id"]
    task = ("dags", "capped", "runs", run_id, "tasks", "talk")
    offset, text, polls = 0, "", 0
    while True:
        body = api.get(*task, "log", params={"offset": offset})
        assert body["offset"] >= offset
        text += body["text"]
        offset = body["offset"]
        if "early 99\n" in text and not capped.exists():
            assert not body["complete"]
            capped.touch()  # read while the task runs: now let it print the rest
        if body["complete"]:
            break
        polls += 1
        assert polls < 1200, "the log never completed"
        api.run_loop(0.05)
    path = Path(body["path"])
    assert text == path.read_text(encoding="utf-8") and offset == path.stat().st_size  # nothing lost or repeated
    assert 10240 <= offset <= 10240 + 400
    cut = re.findall(r"nbflow: ([\d,]+) bytes of this log were cut here: it reached max_log_bytes \(10,240\)", text)
    assert len(cut) == 1 and int(cut[0].replace(",", "")) > 1_000_000 - 20_480
    head, tail = text.split(" bytes of this log were cut here")
    assert "early 0\n" in head and "early 99\n" in head and "late 99999\n" in tail
    assert api.get(*task, "log", params={"offset": 0})["text"] == text

    logs = subprocess.run([sys.executable, "-m", "nbflow", "tasks", "logs", "capped", "talk", "--run-id", run_id],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "NBFLOW_HOME": str(server_env)})
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.startswith("==> talk try 1: success") and text in logs.stdout


@pytest.fixture
def mapped(server_env: Path) -> Path:
    (server_env / "dags" / "fan.py").write_text(textwrap.dedent('''
        from nbflow import DAG, task

        with DAG("fan", timezone="UTC", default_args={"retries": 0}):
            @task
            def numbers():
                return [1, 2, 3]

            @task
            def double(x):
                print(f"doubling {x}")
                if x == 2:
                    raise ValueError("two is odd today")
                return 2 * x

            double.expand(x=numbers())
    '''))
    return server_env / "dags"


def test_a_mapped_task_lists_its_instances_and_serves_each_one(api: Api, mapped: Path) -> None:
    run_id = run_to_end(api, "fan")
    run = api.get("dags", "fan", "runs", run_id)
    double = next(ti for ti in run["task_instances"] if ti["task_id"] == "double")
    assert [ti["task_id"] for ti in run["task_instances"]] == ["numbers", "double"]  # one entry per task
    assert double["state"] == "failed" and double["map_index"] == -1
    assert double["map_counts"] == {"success": 2, "failed": 1}
    detail = api.get("dags", "fan", "runs", run_id, "tasks", "double")
    assert [(i["map_index"], i["state"]) for i in detail["instances"]] == [(0, "success"), (1, "failed"), (2, "success")]
    one = api.get("dags", "fan", "runs", run_id, "tasks", "double", params={"map_index": 1})
    assert one["map_index"] == 1 and one["state"] == "failed" and "two is odd today" in one["error"]
    assert "instances" not in one
    log = api.get("dags", "fan", "runs", run_id, "tasks", "double", "log", params={"map_index": 2})
    assert "doubling 3" in log["text"] and "doubling 2" not in log["text"]
    assert api.get("dags", "fan", "runs", run_id, "tasks", "double", "output", params={"map_index": 2})["value"] == 6
    missing = api.error("GET", "dags", "fan", "runs", run_id, "tasks", "double", params={"map_index": 7}, expect=404)
    assert "double[7]" in missing["message"] and "double[0]" in missing["message"]
