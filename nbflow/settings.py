"""Typed settings, read from ``$NBFLOW_HOME/nbflow.toml`` and overridden by ``NBFLOW_<KEY>``.

One frozen object so that every layer reads the same, validated values; :func:`get_settings`
caches it per ``NBFLOW_HOME`` and environment so tests that change either get fresh settings.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbflow.errors import ConfigError

EXECUTORS = ("inline", "thread", "process")


@dataclass(frozen=True)
class Settings:
    """Everything configurable. The key of each field is its name in ``nbflow.toml`` and, upper-cased
    after ``NBFLOW_``, its environment variable."""

    home: Path
    #: folder scanned for DAG files (``.py``); default ``$NBFLOW_HOME/dags``
    dags_folder: Path
    #: SQLAlchemy URL of the metadata store; default a SQLite file in ``$NBFLOW_HOME``
    database_url: str
    logs_folder: Path
    artifacts_folder: Path
    #: executor used when none is given: inline, thread or process
    executor: str = "thread"
    #: most task instances running at once, over all DAGs
    parallelism: int = 16
    #: IANA zone of DAGs that name none; empty means the machine's zone
    default_timezone: str = ""
    #: seconds SQLite waits for a lock before giving up
    db_busy_timeout: float = 30.0
    #: a task output larger than this (bytes, serialised) is refused
    max_output_bytes: int = 64 * 1024 * 1024
    #: outputs whose JSON is at most this many bytes live in the database; larger ones in a file
    inline_output_bytes: int = 64 * 1024
    #: seconds between heartbeats of a scheduler host (and of the task instances it runs)
    heartbeat_interval: float = 5.0
    #: a host silent for this many seconds is taken for dead; its running task instances are retried
    host_stale_after: float = 30.0
    #: seconds between looks at the store for work other hosts or commands created (the fallback;
    #: outcomes of this host's own tasks are handled the moment they arrive)
    poll_interval: float = 1.0
    #: seconds between re-reads of the DAG files in dags_folder
    dag_reload_interval: float = 30.0
    #: whether a Jupyter server with nbflow's extension also runs a scheduler (its default for
    #: ``--NbflowApp.run_scheduler``), so that a lone JupyterLab keeps the schedules without a daemon
    server_scheduler: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}


_FIELDS = {f.name: f for f in dataclasses.fields(Settings) if f.name != "extra"}
_cache: dict[tuple[Any, ...], Settings] = {}


def default_home() -> Path:
    return Path(os.environ.get("NBFLOW_HOME") or Path.home() / "nbflow").expanduser()


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    import tomllib

    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("nbflow.toml", str(path), f"it is not valid TOML ({exc})") from exc
    # Accept both a flat file and one with an [nbflow] table.
    return dict(data.get("nbflow", data))


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _coerce(key: str, value: Any) -> Any:
    kind = _FIELDS[key].type
    if kind == "bool":
        # TOML gives a real bool; an environment variable gives text such as "1" or "false"
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ConfigError(key, value, "expected true or false (1 or 0)")
    try:
        if kind in ("int",):
            return int(value)
        if kind in ("float",):
            return float(value)
        if kind == "Path":
            return Path(str(value)).expanduser()
    except (TypeError, ValueError):
        raise ConfigError(key, value, f"expected a {kind}") from None
    return str(value)


def load_settings(home: Path | str | None = None, env: dict[str, str] | None = None) -> Settings:
    """Build settings from defaults, then ``nbflow.toml``, then ``NBFLOW_*`` variables."""
    env = dict(os.environ if env is None else env)
    home_path = Path(home or env.get("NBFLOW_HOME") or Path.home() / "nbflow").expanduser().resolve()
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in _read_toml(home_path / "nbflow.toml").items():
        if key in _FIELDS and key != "home":
            values[key] = value
        else:
            extra[key] = value
    for key in _FIELDS:
        name = f"NBFLOW_{key.upper()}"
        if key != "home" and name in env:
            values[key] = env[name]
    values = {key: _coerce(key, value) for key, value in values.items()}
    values.setdefault("dags_folder", home_path / "dags")
    values.setdefault("logs_folder", home_path / "logs")
    values.setdefault("artifacts_folder", home_path / "artifacts")
    values.setdefault("database_url", f"sqlite:///{home_path / 'nbflow.db'}")
    settings = Settings(home=home_path, extra=extra, **values)
    _validate(settings)
    return settings


def _validate(settings: Settings) -> None:
    if settings.executor not in EXECUTORS:
        raise ConfigError("executor", settings.executor, f"choose one of {', '.join(EXECUTORS)}")
    if settings.parallelism < 1:
        raise ConfigError("parallelism", settings.parallelism, "it must be at least 1")
    if settings.default_timezone:
        from nbflow.timetables import resolve_timezone

        try:
            resolve_timezone(settings.default_timezone)
        except Exception as exc:  # TimezoneError: re-worded as a settings problem
            raise ConfigError("default_timezone", settings.default_timezone, "unknown IANA time zone") from exc


def get_settings() -> Settings:
    """The settings for the current ``NBFLOW_HOME`` and environment, cached."""
    key = (os.environ.get("NBFLOW_HOME"), tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("NBFLOW_"))))
    cached = _cache.get(key)
    if cached is None:
        cached = _cache[key] = load_settings()
    return cached
