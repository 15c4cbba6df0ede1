"""A notebook renamed in Jupyter takes its DAGs along (the server follows its contents events); a DAG
whose file is really gone says so in one line, with the fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
from nbformat import v4

from jupyter_api import *  # noqa: F403 (the test server's fixtures)
from jupyter_api import Api, wait_for
from nbflow.engine.discovery import collect
from nbflow.engine.sync import sync
from nbflow.store import Store

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
CELL = '''%%dag renamed_etl --timezone UTC
from nbflow import task

@task
def extract():
    return [1, 2, 3]

@task
def total(rows):
    return sum(rows)

total(extract())
'''


def _notebook_with_a_dag(path: Path) -> None:
    nb = v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    nb.cells.append(v4.new_code_cell("%load_ext nbflow"))
    nb.cells.append(v4.new_code_cell(CELL))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    with Store.open() as store:  # as the kernel records it when the %%dag cell runs
        sync(collect([path]), store)


def _fileloc(dag_id: str) -> str:
    with Store.open() as store:
        return (store.get_dag(dag_id) or {}).get("fileloc") or ""


def _rename(api: Api, jp_fetch: Any, old: str, new: str) -> None:
    response = api._loop.run_until_complete(
        jp_fetch("api", "contents", old, method="PATCH", body=json.dumps({"path": new})))
    assert response.code == 200


def test_a_renamed_notebooks_dag_runs_from_its_new_path(api: Api, jp_fetch: Any, jp_root_dir: Path) -> None:
    _notebook_with_a_dag(jp_root_dir / "Untitled.ipynb")
    assert _fileloc("renamed_etl") == str((jp_root_dir / "Untitled.ipynb").resolve())
    _rename(api, jp_fetch, "Untitled.ipynb", "sales.ipynb")
    new = str((jp_root_dir / "sales.ipynb").resolve())

    def moved() -> bool:
        api.run_loop(0.02)  # the server's event loop delivers the contents event
        return _fileloc("renamed_etl") == new

    wait_for(moved, 10, "the DAG's row to follow the rename")
    run = api.post("dags", "renamed_etl", "runs", body={}, expect=201)["run"]
    finished = wait_for(lambda: (r := api.get("dags", "renamed_etl", "runs", run["run_id"]))["state"]
                        in ("success", "failed") and r, 60, "the run to finish")
    assert finished["state"] == "success"


def test_a_renamed_folder_moves_the_dags_of_its_notebooks(api: Api, jp_fetch: Any, jp_root_dir: Path) -> None:
    _notebook_with_a_dag(jp_root_dir / "drafts" / "Untitled.ipynb")
    _rename(api, jp_fetch, "drafts", "reports")
    new = str((jp_root_dir / "reports" / "Untitled.ipynb").resolve())

    def moved() -> bool:
        api.run_loop(0.02)
        return _fileloc("renamed_etl") == new

    wait_for(moved, 10, "the DAG's row to follow the folder's rename")


def test_a_dag_whose_notebook_is_gone_says_what_to_do(api: Api, jp_root_dir: Path) -> None:
    path = jp_root_dir / "Untitled.ipynb"
    _notebook_with_a_dag(path)
    path.unlink()  # deleted behind Jupyter's back
    body = api.error("POST", "dags", "renamed_etl", "runs", body={}, expect=409)
    assert body["message"] == (
        f"DAG 'renamed_etl': its file {path.resolve()} is gone (moved or deleted outside Jupyter). Open the "
        "notebook or file where the DAG is now and run its %%dag cell again (or put the file back).")
    assert "\n" not in body["message"]
