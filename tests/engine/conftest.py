"""Fixtures the engine's tests share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nbflow.settings import load_settings


@pytest.fixture
def settings(nbflow_home: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Settings whose store is the test's backend (SQLite or PostgreSQL); a module that needs more
    (a poll interval of 0, for stepping hosts with tick) defines its own."""
    monkeypatch.setenv("NBFLOW_DATABASE_URL", store_url)
    return load_settings()
