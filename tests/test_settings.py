"""Settings: defaults under NBFLOW_HOME, nbflow.toml, NBFLOW_* overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbflow.errors import ConfigError
from nbflow.settings import load_settings


def test_defaults_live_under_home(tmp_path: Path) -> None:
    s = load_settings(env={"NBFLOW_HOME": str(tmp_path)})
    assert s.home == tmp_path.resolve()
    assert s.dags_folder == s.home / "dags" and s.logs_folder == s.home / "logs"
    assert s.artifacts_folder == s.home / "artifacts"
    assert s.database_url == f"sqlite:///{s.home / 'nbflow.db'}"
    assert s.executor == "thread"


def test_toml_then_environment(tmp_path: Path) -> None:
    (tmp_path / "nbflow.toml").write_text('executor = "process"\nparallelism = 3\n[custom]\nx = 1\n')
    s = load_settings(env={"NBFLOW_HOME": str(tmp_path)})
    assert (s.executor, s.parallelism) == ("process", 3)
    s = load_settings(env={"NBFLOW_HOME": str(tmp_path), "NBFLOW_PARALLELISM": "7", "NBFLOW_DAGS_FOLDER": "/srv/dags"})
    assert s.parallelism == 7 and s.dags_folder == Path("/srv/dags")


def test_bad_values_name_the_setting_and_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'executor' = 'gpu'.*NBFLOW_EXECUTOR"):
        load_settings(env={"NBFLOW_HOME": str(tmp_path), "NBFLOW_EXECUTOR": "gpu"})
    with pytest.raises(ConfigError, match="parallelism"):
        load_settings(env={"NBFLOW_HOME": str(tmp_path), "NBFLOW_PARALLELISM": "many"})
    with pytest.raises(ConfigError, match="default_timezone"):
        load_settings(env={"NBFLOW_HOME": str(tmp_path), "NBFLOW_DEFAULT_TIMEZONE": "Nowhere/City"})
    (tmp_path / "nbflow.toml").write_text("executor = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(env={"NBFLOW_HOME": str(tmp_path)})


def test_server_scheduler_is_a_boolean_from_toml_or_environment(tmp_path: Path) -> None:
    assert load_settings(env={"NBFLOW_HOME": str(tmp_path)}).server_scheduler is False
    (tmp_path / "nbflow.toml").write_text("server_scheduler = true\n")
    assert load_settings(env={"NBFLOW_HOME": str(tmp_path)}).server_scheduler is True
    env = {"NBFLOW_HOME": str(tmp_path), "NBFLOW_SERVER_SCHEDULER": "0"}
    assert load_settings(env=env).server_scheduler is False
    env["NBFLOW_SERVER_SCHEDULER"] = "yes"
    assert load_settings(env=env).server_scheduler is True
    env["NBFLOW_SERVER_SCHEDULER"] = "sometimes"
    with pytest.raises(ConfigError, match="server_scheduler.*NBFLOW_SERVER_SCHEDULER"):
        load_settings(env=env)
