"""Settings: defaults under NBFLOW_HOME, nbflow.toml, NBFLOW_* overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbflow.errors import ConfigError, ConfigFileError
from nbflow.settings import load_settings


def test_defaults_live_under_home(tmp_path: Path) -> None:
    s = load_settings(env={"NBFLOW_HOME": str(tmp_path)})
    assert s.home == tmp_path.resolve()
    assert s.dags_folder == s.home / "dags" and s.logs_folder == s.home / "logs"
    assert s.artifacts_folder == s.home / "artifacts"
    assert s.database_url == f"sqlite:///{s.home / 'nbflow.db'}"
    assert s.executor == "auto" and s.worker_max_rss_mb == 1024


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


def test_every_value_knows_where_it_came_from(tmp_path: Path) -> None:
    (tmp_path / "nbflow.toml").write_text('executor = "process"\n')
    s = load_settings(env={"NBFLOW_HOME": str(tmp_path), "NBFLOW_PARALLELISM": "3"})
    assert s.config_file == tmp_path.resolve() / "nbflow.toml"
    assert s.source_of("executor") == str(s.config_file)
    assert s.source_of("parallelism") == "NBFLOW_PARALLELISM"
    assert s.source_of("poll_interval") == "default"
    assert s.source_of("home") == "NBFLOW_HOME"
    assert "sources" not in s.as_dict() and "extra" not in s.as_dict()


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "-1", "-0.5"])
def test_float_settings_refuse_nan_infinity_and_negatives(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env={"NBFLOW_HOME": str(tmp_path), "NBFLOW_DB_BUSY_TIMEOUT": text})
    error = info.value
    assert (error.key, error.source) == ("db_busy_timeout", "NBFLOW_DB_BUSY_TIMEOUT")
    assert "\n" not in str(error)
    assert "(from the environment variable NBFLOW_DB_BUSY_TIMEOUT)" in str(error)
    assert "finite" in str(error) or "0 or more" in str(error)


def test_numbers_from_toml_must_be_numbers_of_the_right_kind(tmp_path: Path) -> None:
    toml = tmp_path / "nbflow.toml"
    for line, expected in [("parallelism = true", "whole number"), ("parallelism = 2.5", "whole number"),
                           ("heartbeat_interval = -3", "0 or more"), ("poll_interval = nan", "finite"),
                           ('max_output_bytes = "lots"', "whole number"), ("parallelism = 0", "at least 1")]:
        toml.write_text(line + "\n")
        with pytest.raises(ConfigError, match=expected) as info:
            load_settings(env={"NBFLOW_HOME": str(tmp_path)})
        assert info.value.source == str(toml.resolve()), line
        assert f"(from {toml.resolve()})" in str(info.value)
    toml.write_text("parallelism = 4.0\npoll_interval = 0\n")  # a whole float, and 0 where 0 means "at once"
    s = load_settings(env={"NBFLOW_HOME": str(tmp_path)})
    assert (s.parallelism, s.poll_interval) == (4, 0.0) and isinstance(s.parallelism, int)


def test_empty_paths_are_refused_not_taken_for_the_working_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="dags_folder.*NBFLOW_DAGS_FOLDER.*folder path"):
        load_settings(env={"NBFLOW_HOME": str(tmp_path), "NBFLOW_DAGS_FOLDER": ""})
    with pytest.raises(ConfigError, match="database_url.*NBFLOW_DATABASE_URL.*database URL"):
        load_settings(env={"NBFLOW_HOME": str(tmp_path), "NBFLOW_DATABASE_URL": " "})


def test_a_broken_settings_file_is_named_with_its_line(tmp_path: Path) -> None:
    toml = tmp_path / "nbflow.toml"
    toml.write_text('executor = "thread"\nparallelism = \n')
    with pytest.raises(ConfigFileError) as info:
        load_settings(env={"NBFLOW_HOME": str(tmp_path)})
    message = str(info.value)
    assert info.value.path == str(toml.resolve()) and info.value.line == 2
    assert message.startswith(f"the settings file {toml.resolve()}, line 2 cannot be used: it is not valid TOML")
    assert "NBFLOW_NBFLOW" not in message and "\n" not in message
    toml.write_bytes(b'executor = "\xff"\n')
    with pytest.raises(ConfigFileError, match="not UTF-8"):
        load_settings(env={"NBFLOW_HOME": str(tmp_path)})
    toml.write_text("nbflow = 3\n")
    with pytest.raises(ConfigFileError, match=r"\[nbflow\]"):
        load_settings(env={"NBFLOW_HOME": str(tmp_path)})


def test_unknown_or_misplaced_keys_in_the_file_are_refused_not_ignored(tmp_path: Path) -> None:
    toml = tmp_path / "nbflow.toml"
    toml.write_text("paralelism = 4\n")
    with pytest.raises(ConfigFileError, match="'paralelism', which is not an nbflow setting.*'parallelism'"):
        load_settings(env={"NBFLOW_HOME": str(tmp_path)})
    toml.write_text('[nbflow]\nhome = "/elsewhere"\n')
    with pytest.raises(ConfigFileError, match="NBFLOW_HOME"):
        load_settings(env={"NBFLOW_HOME": str(tmp_path)})


def test_max_conf_bytes_defaults_to_one_mebibyte_and_must_hold_an_empty_object(tmp_path: Path) -> None:
    assert load_settings(env={"NBFLOW_HOME": str(tmp_path)}).max_conf_bytes == 1048576
    assert load_settings(env={"NBFLOW_HOME": str(tmp_path), "NBFLOW_MAX_CONF_BYTES": "4096"}).max_conf_bytes == 4096
    for text in ("0", "1", "-5", "lots"):
        with pytest.raises(ConfigError) as info:
            load_settings(env={"NBFLOW_HOME": str(tmp_path), "NBFLOW_MAX_CONF_BYTES": text})
        assert info.value.key == "max_conf_bytes" and "NBFLOW_MAX_CONF_BYTES" in str(info.value), text


def test_retention_settings_defaults_and_bad_values(tmp_path: Path) -> None:
    s = load_settings(env={"NBFLOW_HOME": str(tmp_path)})
    assert (s.retention_days, s.retention_failed_days, s.retention_max_runs_per_dag, s.retention_interval) == (30, 90, 0, 300.0)
    (tmp_path / "nbflow.toml").write_text("retention_days = 7\nretention_max_runs_per_dag = 50\n")
    s = load_settings(env={"NBFLOW_HOME": str(tmp_path)})
    assert (s.retention_days, s.retention_max_runs_per_dag) == (7, 50)
    for key, value, problem in (("RETENTION_DAYS", "-1", "0 or more"), ("RETENTION_DAYS", "a month", "whole number"),
                                ("RETENTION_MAX_RUNS_PER_DAG", "1.5", "whole number"),
                                ("RETENTION_FAILED_DAYS", "3", "at least as long.*7 \\(retention_days\\)"),
                                ("RETENTION_INTERVAL", "soon", "a number")):
        with pytest.raises(ConfigError, match=f"'{key.lower()}'.*{problem}.*NBFLOW_{key}"):
            load_settings(env={"NBFLOW_HOME": str(tmp_path), f"NBFLOW_{key}": value})
    # 0 keeps failed runs forever, and retention_days 0 keeps every run
    assert load_settings(env={"NBFLOW_HOME": str(tmp_path), "NBFLOW_RETENTION_FAILED_DAYS": "0"}).retention_failed_days == 0
