"""The REST API's schedules in words follow the reader's browser (its Accept-Language), else the
server's locale (cron-descriptor for languages other than English), in the same fields as before:
``schedule_text`` of a DAG, ``description`` of a cron."""

from __future__ import annotations

from pathlib import Path

import pytest

from jupyter_api import *  # noqa: F403 (the test server's fixtures)
from jupyter_api import Api

DAG_FILE = '''
from nbflow import DAG
from nbflow.operators import EmptyOperator

with DAG("german_days", schedule="30 7 * * 1-5", start_date="2024-01-01", timezone="Europe/Berlin"):
    EmptyOperator(task_id="only")
'''


@pytest.fixture
def german(monkeypatch: pytest.MonkeyPatch, server_env: Path) -> Path:
    for name in ("LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    (server_env / "dags" / "german_days.py").write_text(DAG_FILE)
    return server_env


def test_schedule_words_in_the_servers_language(german: Path, api: Api) -> None:
    listed = {d["dag_id"]: d for d in api.get("dags")["dags"]}
    assert listed["german_days"]["schedule"] == "30 7 * * 1-5"
    assert listed["german_days"]["schedule_text"] == "Um 07:30, Montag bis Freitag"
    checked = api.get("cron", params={"expression": "0 6 * * 0", "n": "1"})
    assert checked["description"] == "Um 06:00, nur am Sonntag"


@pytest.mark.parametrize(("accept", "days", "sunday"), [
    ("en-US,en;q=0.9,de;q=0.8", "at 07:30, Monday to Friday", "at 06:00 on Sunday"),
    ("fr;q=0.3, ja-JP", "07:30、月曜日 から 金曜日", None),  # q=1 first: Japanese
    ("xx-YY", "Um 07:30, Montag bis Freitag", "Um 06:00, nur am Sonntag"),  # none it has: the server's
])
def test_schedule_words_in_the_browsers_language(german: Path, api: Api, accept: str, days: str,
                                                 sunday: str | None) -> None:
    headers = {"Accept-Language": accept}
    listed = {d["dag_id"]: d for d in api.get("dags", headers=headers)["dags"]}
    assert days in listed["german_days"]["schedule_text"]
    detail = api.get("dags", "german_days", headers=headers)
    assert days in detail["schedule_text"]
    checked = api.get("cron", params={"expression": "0 6 * * 0", "n": "1"}, headers=headers)["description"]
    if sunday is not None:
        assert checked == sunday
    else:
        assert "日曜日" in checked
