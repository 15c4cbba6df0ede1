"""The server extension when nbflow's settings or store cannot be used: the server and its other
extensions keep running, and every nbflow request answers with the one line the command line prints."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from jupyter_api import *  # noqa: F403 (the test server's fixtures)
from jupyter_api import FAST, Api

CASES = {
    "nan": ("NBFLOW_DB_BUSY_TIMEOUT", "nan", 500, "ConfigError",
            "setting 'db_busy_timeout' = 'nan' (from the environment variable NBFLOW_DB_BUSY_TIMEOUT) is unusable"),
    "garbage url": ("NBFLOW_DATABASE_URL", "garbage", 500, "ConfigError",
                    "setting 'database_url' = 'garbage' (from the environment variable NBFLOW_DATABASE_URL)"),
    "unreachable": ("NBFLOW_DATABASE_URL", "postgresql+psycopg://u:s3cret@127.0.0.1:1/db", 503, "StoreUnavailableError",
                    "cannot connect to the store postgresql+psycopg://u:***@127.0.0.1:1/db"),
}


@pytest.fixture(params=list(CASES))
def case(request: pytest.FixtureRequest) -> tuple[str, str, int, str, str]:
    return CASES[request.param]


@pytest.fixture
def server_env(nbflow_home: Path, monkeypatch: pytest.MonkeyPatch, case: tuple[str, ...]) -> Path:
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(case[0], case[1])
    return nbflow_home


def test_an_unusable_setting_or_store_is_a_json_answer_and_one_log_line(
        api: Api, case: tuple[str, str, int, str, str], caplog: pytest.LogCaptureFixture, jp_fetch: Any,
        jp_asyncio_loop: Any) -> None:
    _, _, status, error, message = case
    with caplog.at_level(logging.INFO):
        for parts in (("dags",), ("dags", "etl", "runs")):
            body: Any = api.get(*parts, expect=status)
            assert body["error"] == error and message in body["message"]
            assert "s3cret" not in str(body)
    assert jp_asyncio_loop.run_until_complete(jp_fetch("api", "status")).code == 200  # the server keeps working
    assert not [r for r in caplog.records if r.exc_info], "an nbflow setup error was logged with a traceback"
    assert any(message in r.getMessage() for r in caplog.records)
