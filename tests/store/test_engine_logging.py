"""What the store's engine lets SQLAlchemy's pool log: a connection whose server went away, failing
its rollback as the pool takes it back, is the outage the store already reports in one line, not an
error with a traceback in a daemon's log."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from nbflow.store.engine import make_engine


def _pool_error(engine: object, error: BaseException) -> None:
    """Log as SQLAlchemy's pool does when resetting a connection it takes back raised ``error``."""
    try:
        raise error
    except type(error):
        engine.pool.logger.error("Exception during reset or similar", exc_info=True)  # type: ignore[attr-defined]


def test_a_reset_that_failed_because_the_server_went_away_is_one_debug_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with caplog.at_level(logging.DEBUG, logger=engine.pool.logger.name):
        _pool_error(engine, sqlite3.OperationalError("server has gone away"))
        _pool_error(engine, ValueError("a bug"))
    gone, bug = caplog.records
    assert gone.levelno == logging.DEBUG and gone.exc_info is None
    assert gone.getMessage() == "Exception during reset or similar: OperationalError: server has gone away"
    assert bug.levelno == logging.ERROR and bug.exc_info is not None  # anything else passes as it is
    engine.dispose()
