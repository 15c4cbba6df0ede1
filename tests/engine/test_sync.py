"""DAG sync: import errors are recorded, and cleared when the file or folder loads again."""

from __future__ import annotations

import time
from pathlib import Path

from nbflow.engine.discovery import collect
from nbflow.engine.scheduler import Scheduler
from nbflow.engine.sync import sync
from nbflow.settings import load_settings
from nbflow.store import Store

GOOD = '''
from nbflow import DAG
from nbflow.operators import EmptyOperator

with DAG("arrives_later", schedule=None, start_date="2024-01-01"):
    EmptyOperator(task_id="only")
'''


def test_a_missing_folder_error_clears_when_the_folder_loads(nbflow_home: Path) -> None:
    folder = nbflow_home / "elsewhere"
    with Store.open() as store:
        sync(collect([folder]), store)
        [error] = store.list_import_errors()
        assert error["fileloc"] == str(folder.resolve())
        assert "create it" in error["summary"] and "FileNotFoundError" not in error["summary"]
        folder.mkdir()
        (folder / "later.py").write_text(GOOD)
        sync(collect([folder]), store)
        assert store.list_import_errors() == []
        assert store.get_dag("arrives_later") is not None


def test_a_host_in_a_fresh_home_makes_its_dags_folder_and_records_no_error(nbflow_home: Path) -> None:
    settings = load_settings()
    assert not Path(settings.dags_folder).exists()
    with Store.open(settings) as store:
        host = Scheduler(settings=settings, store=store, executor="inline")
        deadline = time.monotonic() + 30
        while not host._reload_dags():  # files are parsed in the background; poll with a timeout
            assert time.monotonic() < deadline, "the host did not finish loading dags_folder"
            time.sleep(0.02)
        assert Path(settings.dags_folder).is_dir()
        assert store.list_import_errors() == []
