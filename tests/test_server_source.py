"""``GET dags/<id>/source``: the file and line of a ``.py`` DAG, the notebook cell of a ``%%dag``
DAG (with its Lab path when it is under the server's root), and the refusals: a DAG without a file,
a file outside the folders the API may read."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat import v4

from jupyter_api import *  # noqa: F403 (the test server's fixtures)
from jupyter_api import Api
from test_dagsource import SOURCE
from nbflow.store import Store


@pytest.fixture
def jp_root_dir(tmp_path: Path) -> Path:
    """The server's root is the test's folder; NBFLOW_HOME (and its dags folder) is inside it."""
    return tmp_path


PY = SOURCE


def test_the_api_gives_a_dag_files_text_line_and_lab_path(api: Api, server_env: Path, jp_root_dir: Path) -> None:
    (server_env / "dags" / "two.py").write_text(PY)
    found = api.get("dags", "third", "source")
    assert found["kind"] == "python" and found["line"] == 24 and found["cell"] is None
    assert found["text"] == PY
    assert found["path"] == str((server_env / "dags" / "two.py").resolve())
    assert found["lab_path"] == (server_env / "dags" / "two.py").resolve().relative_to(jp_root_dir.resolve()).as_posix()


def test_the_api_gives_a_notebook_dags_cell(api: Api, server_env: Path) -> None:
    notebook = v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                        "language": "python"}})
    notebook.cells = [v4.new_code_cell("%load_ext nbflow"),
                      v4.new_code_cell("%%dag nbdag\nfrom nbflow import task\n\n@task\ndef hello():\n    return 1\nhello()")]
    nbformat.write(notebook, server_env / "dags" / "book.ipynb")
    found = api.get("dags", "nbdag", "source")
    assert found["kind"] == "notebook" and found["cell"] == 1 and found["line"] == 1
    assert found["text"].startswith("%%dag nbdag")
    assert found["lab_path"].endswith("dags/book.ipynb")


def test_a_dag_file_outside_the_readable_folders_is_refused(api: Api, server_env: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    (server_env / "dags" / "one.py").write_text(PY)
    api.get("dags", "first", "source")
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "secret.py"
    elsewhere.write_text("SECRET = 'not for the API'\n")
    from sqlalchemy import create_engine, text

    store = Store.open()
    engine = create_engine(store.url)  # what a tampered store would say
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE dag SET fileloc = :f WHERE dag_id = 'first'"), {"f": str(elsewhere)})
    finally:
        engine.dispose()
        store.close()
    answer = api.request("GET", "dags", "first", "source", expect=403)
    body = json.loads(answer.body)
    assert body["error"] == "PathNotAllowedError" and "SECRET" not in answer.body.decode()
