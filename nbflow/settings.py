"""Typed settings, read from ``$NBFLOW_HOME/nbflow.toml`` and overridden by ``NBFLOW_<KEY>``.

One frozen object so that every layer reads the same, validated values; :func:`get_settings`
caches it per ``NBFLOW_HOME`` and environment so tests that change either get fresh settings.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbflow.errors import ConfigError, ConfigFileError

EXECUTORS = ("inline", "thread", "process", "dask")
#: the smallest max_log_bytes: a head, a tail and the line saying what was cut between them
MIN_LOG_BYTES = 1024


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
    #: executor used when none is given: inline, thread, process or dask; "auto" (the default, or empty)
    #: picks per host: worker processes in long-lived hosts (the daemon, the Jupyter server), threads
    #: where the caller runs its own tasks (a notebook kernel, ``dag.test()``, ``nbflow dags test``,
    #: backfill)
    executor: str = "auto"
    #: a worker process whose memory (RSS, MiB) is above this after a task is replaced, so that what
    #: a task left allocated returns to the system; 0 turns the check off
    worker_max_rss_mb: int = 1024
    #: memory_limit of every task that sets none: "2GiB", "300MB", "512MiB" or bytes; empty for no
    #: limit. Enforced on the task's whole process tree in worker processes (the process executor)
    task_memory_limit: str = ""
    #: a scheduler host starts no new task while the machine's free (available) memory is under
    #: this: a percentage of its memory ("10%") or a size ("2GiB"); "0" turns the check off
    min_free_memory: str = "10%"
    #: most task instances running at once, over all DAGs
    parallelism: int = 16
    #: the Dask scheduler the dask executor sends tasks to (``tcp://host:8786``); empty: the host
    #: starts a local Dask cluster of its own (dask_workers, dask_threads_per_worker) and closes it
    #: when it stops
    dask_address: str = ""
    #: worker processes of that local Dask cluster; 0: Dask's choice for this machine
    dask_workers: int = 0
    #: threads in each of its worker processes; 0: Dask's choice for this machine
    dask_threads_per_worker: int = 0
    #: a task output made on a Dask worker that is larger than this ("100MB", "1GiB" or bytes) stays
    #: on the cluster: downstream tasks read it there, the store keeps its preview, and it is
    #: released when the run ends. Empty or "0": every output comes back to the store
    dask_keep_outputs_over: str = ""
    #: IANA zone of DAGs that name none; empty means the machine's zone
    default_timezone: str = ""
    #: seconds SQLite waits for a lock before giving up
    db_busy_timeout: float = 30.0
    #: seconds a scheduler host waits out a store that does not answer (server down or restarting,
    #: connection lost, SQLite locked) while its running tasks go on; past it the host also stops
    #: claiming new work until the store answers. It never exits because of the database.
    db_outage_grace: float = 120.0
    #: a task output larger than this (bytes, serialised) is refused
    max_output_bytes: int = 64 * 1024 * 1024
    #: outputs whose JSON is at most this many bytes live in the database; larger ones in a file
    inline_output_bytes: int = 64 * 1024
    #: most instances one mapped task may expand to in a run (``task.expand(...)``); past it the
    #: mapped task fails, as in Airflow
    max_map_length: int = 1024
    #: a run's conf larger than this (bytes of its JSON) is refused: every answer listing runs carries it
    max_conf_bytes: int = 1024 * 1024
    #: a try's log is kept to about this many bytes: its first and last halves, with a line saying
    #: how much was cut between them (a task printing without end must not fill the disk)
    max_log_bytes: int = 64 * 1024 * 1024
    #: days a finished run is kept (its rows, logs and artifacts), counted from its end; 0 keeps
    #: every run forever (failed ones too). Runs still queued or running and each DAG's last run are
    #: never deleted.
    retention_days: int = 30
    #: days a failed run is kept, at least retention_days (failures are looked at later); 0 keeps
    #: failed runs forever
    retention_failed_days: int = 90
    #: most finished runs kept per DAG, newest first; older ones go whatever their age. 0: no limit
    retention_max_runs_per_dag: int = 0
    #: seconds between the janitor passes of a scheduler host, each deleting at most a small batch
    #: of runs past the retention settings; 0 turns the janitor off (``nbflow db clean`` still works)
    retention_interval: float = 300.0
    #: seconds between heartbeats of a scheduler host (and of the task instances it runs)
    heartbeat_interval: float = 5.0
    #: a host silent for this many seconds is taken for dead; its running task instances are retried
    host_stale_after: float = 30.0
    #: seconds between looks at the store for work other hosts or commands created (the fallback;
    #: outcomes of this host's own tasks are handled the moment they arrive)
    poll_interval: float = 1.0
    #: seconds between re-reads of the DAG files in dags_folder
    dag_reload_interval: float = 30.0
    #: seconds a DAG file (or notebook) may take to load; it is loaded in a separate process, which
    #: is killed past this, and the file becomes an import error
    dag_file_timeout: float = 30.0
    #: whether a Jupyter server with nbflow's extension also runs a scheduler (its default for
    #: ``--NbflowApp.run_scheduler``), so that a lone JupyterLab keeps the schedules without a daemon
    server_scheduler: bool = False
    #: the Fernet key that encrypts connection passwords and extras and variables in the store;
    #: several keys, comma-separated, rotate: the first encrypts, each decrypts. Empty means the key
    #: file ``$NBFLOW_HOME/fernet.key``, created (mode 0600) on first use. Never shown.
    fernet_key: str = field(default="", repr=False)
    #: Apprise URLs told when a task fails for good (after its last try), in every DAG that does not
    #: set its own ``notify_on_failure``; in nbflow.toml a list, in ``NBFLOW_NOTIFY_ON_FAILURE`` URLs
    #: separated by spaces. Also the targets of a missed ``deadline`` when the DAG names none.
    notify_on_failure: tuple[str, ...] = ()
    #: Apprise URLs told when a run succeeds (once per run, not per task)
    notify_on_success: tuple[str, ...] = ()
    #: Apprise URLs told when a try fails and the task will be tried again
    notify_on_retry: tuple[str, ...] = ()
    #: the JupyterLab server's address as people reach it, for the link to a run in notifications
    base_url: str = "http://localhost:8888"
    #: the SMTP server for EmailOperator and the task options email_on_failure / email_on_retry
    smtp_host: str = "localhost"
    smtp_port: int = 25
    #: upgrade the connection with STARTTLS (the server must offer it); not with smtp_ssl
    smtp_starttls: bool = True
    #: connect with TLS from the start (usually port 465); not with smtp_starttls
    smtp_ssl: bool = False
    #: log in with these when smtp_user is set
    smtp_user: str = ""
    smtp_password: str = field(default="", repr=False)
    #: the sender of every mail; required to send any
    smtp_mail_from: str = ""
    #: seconds to wait for the SMTP server (connecting and each reply)
    smtp_timeout: float = 30.0
    extra: dict[str, Any] = field(default_factory=dict)
    #: where each value came from: "default", the environment variable's name, or the nbflow.toml
    #: path; kept so that an error about a value (a database that cannot be reached) names the
    #: place to fix it
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in _NOT_SETTINGS}

    @property
    def config_file(self) -> Path:
        """The ``nbflow.toml`` these settings read (it may not exist)."""
        return self.home / "nbflow.toml"

    def source_of(self, key: str) -> str:
        """Where setting ``key`` came from: "default", ``NBFLOW_<KEY>`` or the nbflow.toml path."""
        return self.sources.get(key, "default")


_NOT_SETTINGS = ("extra", "sources")
_FIELDS = {f.name: f for f in dataclasses.fields(Settings) if f.name not in _NOT_SETTINGS}
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
        # Python 3.11's TOMLDecodeError carries the position only in its text
        found = re.search(r"at line (\d+)", str(exc))
        raise ConfigFileError(str(path), f"it is not valid TOML ({exc})", int(found[1]) if found else None) from None
    except UnicodeDecodeError as exc:
        raise ConfigFileError(str(path), f"it is not UTF-8 text (byte {exc.start} cannot be decoded)") from None
    except OSError as exc:
        raise ConfigFileError(str(path), f"it cannot be read ({exc.strerror or exc})") from None
    # Accept both a flat file and one with an [nbflow] table.
    table = data.get("nbflow", data)
    if not isinstance(table, dict):
        raise ConfigFileError(str(path), "its 'nbflow' entry is not a table; write the settings under [nbflow] "
                                         "or at the top of the file")
    for key, value in table.items():
        # Other tables are kept (settings.extra); a plain value under an unknown name is a typo that
        # would otherwise be ignored without a word.
        if key not in _FIELDS and not isinstance(value, dict):
            close = difflib.get_close_matches(key, list(_FIELDS), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigFileError(str(path), f"it sets '{key}', which is not an nbflow setting ({hint}the settings "
                                             "are listed in README.md, 'Where things live')")
    return dict(table)


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _coerce(key: str, value: Any, source: str) -> Any:
    kind = _FIELDS[key].type
    if kind == "bool":
        # TOML gives a real bool; an environment variable gives text such as "1" or "false"
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ConfigError(key, value, "expected true or false (1 or 0)", source)
    if kind in ("int", "float"):
        # int(True) and int(2.5) would pass silently; NaN and infinity compare false with every
        # bound and break the arithmetic that uses them (a busy timeout in milliseconds)
        number: float | int | None = None
        if not isinstance(value, bool):
            try:
                number = float(value) if kind == "float" else _whole(value)
            except (TypeError, ValueError):
                number = None
        if number is None:
            expected = "a whole number" if kind == "int" else "a number"
            raise ConfigError(key, value, f"expected {expected}", source)
        if not math.isfinite(number):
            raise ConfigError(key, value, "expected a finite number, not NaN or infinity", source)
        if number < 0:
            raise ConfigError(key, value, "it must be 0 or more", source)
        return number
    if kind == "tuple[str, ...]":
        # a list in nbflow.toml; URLs separated by spaces in an environment variable (an Apprise URL
        # may hold commas, never a space)
        items = value.split() if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) for item in items):
            raise ConfigError(key, value, "expected a list of Apprise URLs (in NBFLOW_* variables: separated by spaces)",
                              source)
        return tuple(item.strip() for item in items if item.strip())
    if kind == "Path":
        if not str(value).strip():
            raise ConfigError(key, value, "expected a folder path, not an empty value", source)
        return Path(str(value)).expanduser()
    if key == "database_url" and not str(value).strip():
        raise ConfigError(key, value, "expected a database URL such as sqlite:////path/nbflow.db", source)
    return str(value)


def _whole(value: Any) -> int:
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(value)
        return int(value)
    return int(str(value).strip()) if isinstance(value, str) else int(value)


def load_settings(home: Path | str | None = None, env: dict[str, str] | None = None) -> Settings:
    """Build settings from defaults, then ``nbflow.toml``, then ``NBFLOW_*`` variables."""
    env = dict(os.environ if env is None else env)
    home_path = Path(home or env.get("NBFLOW_HOME") or Path.home() / "nbflow").expanduser().resolve()
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    sources = {key: "default" for key in _FIELDS}
    if not home and env.get("NBFLOW_HOME"):
        sources["home"] = "NBFLOW_HOME"
    config_file = home_path / "nbflow.toml"
    for key, value in _read_toml(config_file).items():
        if key == "home":
            raise ConfigFileError(str(config_file), "it sets 'home', which only NBFLOW_HOME can set (the file "
                                                    "lives in the home folder)")
        if key in _FIELDS:
            values[key], sources[key] = value, str(config_file)
        else:
            extra[key] = value
    for key in _FIELDS:
        name = f"NBFLOW_{key.upper()}"
        if key != "home" and name in env:
            values[key], sources[key] = env[name], name
    values = {key: _coerce(key, value, sources[key]) for key, value in values.items()}
    values.setdefault("dags_folder", home_path / "dags")
    values.setdefault("logs_folder", home_path / "logs")
    values.setdefault("artifacts_folder", home_path / "artifacts")
    values.setdefault("database_url", f"sqlite:///{home_path / 'nbflow.db'}")
    settings = Settings(home=home_path, extra=extra, sources=sources, **values)
    try:
        _validate(settings)
    except ConfigError as exc:
        if exc.source is not None:
            raise
        # the checks name the setting; where its value came from is known only here
        raise ConfigError(exc.key, exc.value, exc.problem, settings.source_of(exc.key)) from exc.__cause__
    return settings


def _validate(settings: Settings) -> None:
    if settings.executor not in (*EXECUTORS, "auto", ""):
        raise ConfigError("executor", settings.executor,
                          f"choose one of {', '.join(EXECUTORS)}, or auto for each host's default")
    if settings.task_memory_limit.strip():
        from nbflow.memory import SIZE_FORMS, parse_size

        if parse_size(settings.task_memory_limit) is None:
            raise ConfigError("task_memory_limit", settings.task_memory_limit, f"give {SIZE_FORMS}, or leave it empty for no limit")
    from nbflow.memory import parse_free

    if parse_free(settings.min_free_memory) is None:
        raise ConfigError("min_free_memory", settings.min_free_memory,
                          "give a percentage of the machine's memory (\"10%\") or a size (\"2GiB\"), or \"0\" for no check")
    if settings.parallelism < 1:
        raise ConfigError("parallelism", settings.parallelism, "it must be at least 1")
    address = settings.dask_address.strip()
    if address and ":" not in address:
        raise ConfigError("dask_address", settings.dask_address, "give the Dask scheduler's address with its port, "
                          "e.g. tcp://host:8786, or leave it empty to start a local cluster")
    for key in ("dask_workers", "dask_threads_per_worker"):
        if address and getattr(settings, key):
            raise ConfigError(key, getattr(settings, key), "it sizes the local Dask cluster started when dask_address "
                              f"is empty; the cluster at dask_address ({address}) has the workers it was started "
                              "with: set it to 0, or leave dask_address empty")
    if settings.dask_keep_outputs_over.strip() not in ("", "0"):
        from nbflow.memory import SIZE_FORMS, parse_size

        if parse_size(settings.dask_keep_outputs_over) is None:
            raise ConfigError("dask_keep_outputs_over", settings.dask_keep_outputs_over,
                              f"give {SIZE_FORMS}, or leave it empty to keep every output in the store")
    if settings.max_map_length < 1:
        raise ConfigError("max_map_length", settings.max_map_length, "it must be at least 1")
    if settings.dag_file_timeout <= 0:
        raise ConfigError("dag_file_timeout", settings.dag_file_timeout,
                          "it must be more than 0 seconds (every DAG file would fail to load)")
    if settings.max_conf_bytes < 2:
        raise ConfigError("max_conf_bytes", settings.max_conf_bytes, "it must be at least 2 (the size of {})")
    if settings.max_log_bytes < MIN_LOG_BYTES:
        raise ConfigError("max_log_bytes", settings.max_log_bytes,
                          f"it must be at least {MIN_LOG_BYTES} bytes, room for a head, a tail and the line between")
    if settings.retention_days and settings.retention_failed_days and settings.retention_failed_days < settings.retention_days:
        raise ConfigError("retention_failed_days", settings.retention_failed_days,
                          f"failed runs are kept at least as long as the others: set it to {settings.retention_days} "
                          "(retention_days) or more, or 0 to keep failed runs forever")
    if settings.fernet_key.strip():
        _check_fernet_keys(settings.fernet_key)
    if settings.smtp_ssl and settings.smtp_starttls:
        raise ConfigError("smtp_ssl", settings.smtp_ssl, "smtp_ssl and smtp_starttls exclude each other: set "
                          "smtp_starttls = false with smtp_ssl (TLS from the start), or smtp_ssl = false")
    if not 0 < settings.smtp_port < 65536:
        raise ConfigError("smtp_port", settings.smtp_port, "give a port from 1 to 65535")
    for key in ("notify_on_failure", "notify_on_success", "notify_on_retry"):
        urls = getattr(settings, key)
        if urls:
            from nbflow.notifytargets import masked, target_problem

            for url in urls:
                problem = target_problem(url)
                if problem:
                    raise ConfigError(key, masked(url), problem)
    if settings.default_timezone:
        from nbflow.timetables import resolve_timezone

        try:
            resolve_timezone(settings.default_timezone)
        except Exception as exc:  # TimezoneError: re-worded as a settings problem
            raise ConfigError("default_timezone", settings.default_timezone, "unknown IANA time zone") from exc


def _check_fernet_keys(value: str) -> None:
    """Each comma-separated key must be what ``Fernet.generate_key()`` gives: 32 bytes, url-safe
    base64. Checked here, with the standard library, so a bad key is a settings error at start-up
    rather than a failure at the first secret; the value is never echoed."""
    import base64
    import binascii

    for number, key in enumerate((part.strip() for part in value.split(",")), start=1):
        try:
            raw = base64.urlsafe_b64decode(key.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raw = b""
        if len(raw) != 32:
            which = f"key {number} of the comma-separated list" if "," in value else "it"
            raise ConfigError(
                "fernet_key", "***",
                f"{which} is not a Fernet key (32 url-safe base64-encoded bytes, 44 characters); make one with "
                "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'",
            )


def get_settings() -> Settings:
    """The settings for the current ``NBFLOW_HOME`` and environment, cached."""
    key = (os.environ.get("NBFLOW_HOME"), tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("NBFLOW_"))))
    cached = _cache.get(key)
    if cached is None:
        cached = _cache[key] = load_settings()
    return cached
