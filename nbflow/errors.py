"""Every error nbflow raises, under one root.

Catch :class:`NbflowError` to handle them all. Each message names what went wrong (the DAG, the
task, the value) and what to do about it. Errors carry their fields as attributes and pickle, so a
failure in a worker process arrives whole in the scheduler.

The tree::

    NbflowError
    ├── ConfigError                      a setting in nbflow.toml or NBFLOW_* is unusable; .source says where it came from
    │   └── ConfigFileError              nbflow.toml itself cannot be read (.path, .line)
    ├── NotInstalledError                a part nbflow finds through its entry points is missing
    ├── DagDefinitionError               the DAG as written cannot run
    │   ├── CycleError                   .path names the loop
    │   ├── DuplicateTaskIdError
    │   ├── TaskOutsideDagError
    │   ├── UnknownTriggerRuleError
    │   ├── UnknownArgumentError         an unknown default_args / operator keyword
    │   ├── InvalidDateError             an unparsable start_date / end_date / logical date
    │   ├── ScheduleError                a bad cron (.field names the bad field) or schedule value
    │   ├── TimezoneError                an unknown IANA time zone
    │   ├── DependencyError              an edge to something that is not a task of this DAG
    │   ├── InvalidOptionError           a task or DAG option out of range (.option, .value, .allowed)
    │   └── InvalidAssetError            an asset URI or asset schedule that cannot be used (.uri)
    ├── NotFoundError                    asked for something the DAG or the store does not have
    │   ├── DagNotFoundError
    │   ├── TaskNotFoundError
    │   ├── RunNotFoundError
    │   ├── TryNotFoundError             a try of a task instance that has not run
    │   ├── ConnectionNotFoundError      no connection with this id, in the environment or the store
    │   └── VariableNotFoundError        no variable with this key, and no default given
    ├── DagImportError                   a DAG file failed to load (recorded as an import error)
    │   └── DagFileGoneError             the file that defined a DAG is no longer where the store says
    ├── InvalidRequestError              a control (backfill, clear, mark, pools) or a view got values it cannot use
    │   ├── InvalidConfError             a run's conf is not a JSON object of plain values, or too large
    │   └── InvalidConnectionError       a connection's URI, id, port or extra cannot be used (.conn_id)
    ├── DagFileConflictError             a DAG file is in the way: nbflow did not write it, or its DAG id is taken
    ├── PathNotAllowedError              a file path that leads outside the folders nbflow may serve
    ├── TemplateError                    a Jinja template failed; .variable names an undefined one
    ├── NotificationError                a notification or an e-mail could not be delivered (.targets, .reason)
    ├── OutputError                      a task's return value cannot be kept
    │   ├── OutputNotSerializableError
    │   ├── OutputTooLargeError
    │   └── OutputOnClusterError     an output kept on the Dask cluster cannot be read here or is gone
    ├── TaskError                        raised inside or about a running task
    │   ├── TaskFailedError              a task failed for good; carries the traceback text
    │   ├── TaskTimeoutError
    │   ├── MemoryLimitError             a task's processes went over its memory_limit and were killed
    │   ├── SensorTimeoutError           a sensor's condition was not met within its timeout
    │   ├── BashCommandError             a non-zero exit code
    │   ├── HttpError                    an HTTP request failed: unreachable, an error status, or its response_check said no
    │   ├── RemoteTaskError              stands in for a worker's exception that could not be unpickled
    │   ├── WorkerLostError              the process running the task died
    │   ├── ExecutorUnavailableError     the executor a task asks for cannot be started on this host
    │   └── NotebookError                a notebook task could not run or did not finish
    │       ├── NotebookNotFoundError    no notebook file at the given path
    │       ├── NotebookKernelError      the kernel it names is not installed; the notebook is kept
    │       ├── NotebookCellError        a cell raised; names the cell, its source and the kept output notebook
    │       └── NotebookTimeoutError     a cell ran past cell_timeout, or the notebook past execution_timeout
    ├── StoreError                       the metadata database
    │   ├── SchemaVersionError           the schema is older or newer than this nbflow
    │   ├── SecretKeyError               the Fernet key that encrypts secrets cannot be read or used (.path)
    │   │   └── DecryptionError          a stored secret was encrypted with another key (.what)
    │   └── TransientStoreError          the store did not answer this time; the same call may succeed later
    │       ├── DatabaseLockedError      the store is busy: another process holds the database
    │       ├── StoreUnavailableError    the database cannot be reached (server down, wrong host or port)
    │       └── StoreInterruptedError    the connection broke mid-transaction (server restarting, connection
    │                                    closed) or the database gave up a conflicting one; nothing of it was stored
    ├── IllegalTransitionError           a state change the state table forbids (a bug)
    ├── NoTaskContextError               get_current_context() outside a running task
    ├── FailTask                         raised by a task: fail now, without its retries
    └── TaskSignal                       not failures: a task's way to end early
        ├── SkipTask                     end this task as skipped
        └── RescheduleTask               give the slot back and run again at .reschedule_at (sensors)
"""

from __future__ import annotations

from typing import Any


def _rebuild(cls: type, message: str, state: dict[str, Any]) -> NbflowError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class NbflowError(Exception):
    """Root of every error nbflow raises."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), str(self), dict(self.__dict__)))


def _where(dag_id: str | None = None, task_id: str | None = None) -> str:
    if dag_id and task_id:
        return f"DAG '{dag_id}', task '{task_id}': "
    if dag_id:
        return f"DAG '{dag_id}': "
    if task_id:
        return f"task '{task_id}': "
    return ""


class ConfigError(NbflowError):
    """Setting ``key`` has a value nbflow cannot use. ``source`` says where the value came from, so
    the message can point at the one place to fix: ``"default"``, an environment variable's name
    (``NBFLOW_...``) or the path of the ``nbflow.toml`` that set it; None when unknown."""

    def __init__(self, key: str, value: Any, problem: str, source: str | None = None) -> None:
        self.key, self.value, self.problem, self.source = key, value, problem, source
        variable = f"NBFLOW_{key.upper()}"
        if source is None:
            where, fix = "", f"Fix it in nbflow.toml or in the environment variable {variable}."
        elif source == "default":
            where, fix = " (the default)", f"Set it in nbflow.toml or in the environment variable {variable}."
        elif source.startswith("NBFLOW_"):
            where, fix = f" (from the environment variable {source})", f"Fix or unset {source}."
        else:
            where, fix = f" (from {source})", f"Fix it in {source} (or override it with {variable})."
        super().__init__(f"setting '{key}' = {value!r}{where} is unusable: {problem}. {fix}")


class NotInstalledError(NbflowError):
    """An entry point nbflow looks up (``group``, ``name``) is missing: the installation is broken."""

    def __init__(self, group: str, name: str) -> None:
        self.group, self.name = group, name
        super().__init__(f"the installed nbflow declares no entry point {name!r} in the group {group!r}; "
                         "reinstall nbflow (pip install nbflow, or ./dev.sh setup in a clone of it)")


class ConfigFileError(ConfigError):
    """The settings file ``path`` cannot be read at all (not TOML, not UTF-8, unreadable); ``line``
    is where the parser stopped, when it says."""

    def __init__(self, path: str, problem: str, line: int | None = None) -> None:
        self.key, self.value, self.problem, self.source = "nbflow.toml", None, problem, str(path)
        self.path, self.line = str(path), line
        at = f", line {line}" if line is not None else ""
        NbflowError.__init__(
            self,
            f"the settings file {path}{at} cannot be used: {problem}. Fix the file (or move it away to "
            "use the defaults); no setting was read from it.",
        )


class DagDefinitionError(NbflowError):
    """The DAG as written cannot run. Raised while the DAG is being built."""

    def __init__(self, message: str, dag_id: str | None = None, task_id: str | None = None) -> None:
        self.dag_id, self.task_id = dag_id, task_id
        super().__init__(_where(dag_id, task_id) + message)


class CycleError(DagDefinitionError):
    def __init__(self, dag_id: str, path: list[str]) -> None:
        self.path = list(path)
        super().__init__(
            "the tasks form a cycle: " + " >> ".join(path)
            + f". Remove one of these dependencies (for example {path[-2]} >> {path[-1]}).",
            dag_id,
        )


class DuplicateTaskIdError(DagDefinitionError):
    def __init__(self, dag_id: str, task_id: str) -> None:
        super().__init__(
            "a task with this id already exists in the DAG. Give the new task another task_id "
            "(for a @task, call it with .override(task_id=...)).",
            dag_id,
            task_id,
        )


class TaskOutsideDagError(DagDefinitionError):
    def __init__(self, task_id: str) -> None:
        super().__init__(
            "this task belongs to no DAG. Create it inside `with DAG(...):` or a @dag function, "
            "or pass dag=... to the operator.",
            None,
            task_id,
        )


class UnknownTriggerRuleError(DagDefinitionError):
    def __init__(self, value: Any, choices: list[str], dag_id: str | None = None, task_id: str | None = None) -> None:
        self.value = value
        super().__init__(f"unknown trigger_rule {value!r}. Use one of: {', '.join(choices)}.", dag_id, task_id)


class UnknownArgumentError(DagDefinitionError):
    def __init__(
        self, name: str, allowed: list[str], where: str = "default_args",
        dag_id: str | None = None, task_id: str | None = None,
    ) -> None:
        import difflib

        self.name = name
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        super().__init__(
            f"unknown {where} key '{name}'.{hint} Known keys: {', '.join(sorted(allowed))}.",
            dag_id,
            task_id,
        )


class InvalidDateError(DagDefinitionError):
    def __init__(self, field: str, value: Any, dag_id: str | None = None, task_id: str | None = None) -> None:
        self.field, self.value = field, value
        super().__init__(
            f"{field}={value!r} is not a date. Use an ISO date or datetime such as '2024-01-31' "
            "or '2024-01-31T06:00', a datetime.date or a datetime.datetime.",
            dag_id,
            task_id,
        )


#: what a schedule may be in Python, said by a ScheduleError unless its ``accepts`` says otherwise
PYTHON_SCHEDULES = ("Use a 5-field cron string ('minute hour day-of-month month day-of-week', e.g. '0 6 * * *'), "
                    "a preset (@once, @hourly, @daily, @weekly, @monthly, @yearly), a timedelta, or None.")


class ScheduleError(DagDefinitionError):
    """``accepts`` says what the place the schedule was typed into takes (a form that takes only a
    cron expression says so); by default, every schedule the Python API takes."""

    def __init__(self, schedule: Any, problem: str, dag_id: str | None = None, field: str | None = None,
                 accepts: str = PYTHON_SCHEDULES) -> None:
        self.schedule, self.field, self.problem = schedule, field, problem
        super().__init__(f"schedule {schedule!r} is not valid: {problem}. {accepts}", dag_id)


class TimezoneError(DagDefinitionError):
    def __init__(self, name: Any, dag_id: str | None = None) -> None:
        self.name = name
        super().__init__(
            f"unknown time zone {name!r}. Use an IANA name such as 'Europe/Berlin', "
            "'America/New_York' or 'UTC'.",
            dag_id,
        )


class DependencyError(DagDefinitionError):
    pass


class InvalidOptionError(DagDefinitionError):
    """A numeric (or otherwise checked) option of a task or DAG has a value nbflow cannot honour:
    ``retries=-1``, ``execution_timeout=0``, ``max_active_runs=0``, ... ``allowed`` says what would do;
    ``value`` is the repr of the value given (it may not be JSON, e.g. NaN). Refused when the DAG is
    built, so a DAG file, a ``%%dag`` cell and the REST API all stop there."""

    def __init__(
        self, option: str, value: Any, allowed: str, dag_id: str | None = None, task_id: str | None = None,
        via: str = "",
    ) -> None:
        self.option, self.value, self.allowed = option, repr(value), allowed
        source = f" (from {via})" if via else ""
        super().__init__(f"{option}={value!r}{source} is not allowed: {allowed}.", dag_id, task_id)


class InvalidAssetError(DagDefinitionError):
    """An asset that cannot be named this way (``Asset(uri)`` with a URI that has an empty path, a
    space, ...), or an asset schedule or outlet built from something that is not an asset."""

    def __init__(self, uri: Any, problem: str, dag_id: str | None = None, task_id: str | None = None) -> None:
        self.uri, self.problem = repr(uri), problem
        super().__init__(f"asset {uri!r} is not valid: {problem}.", dag_id, task_id)


class NotFoundError(NbflowError):
    pass


class DagNotFoundError(NotFoundError):
    """No DAG ``dag_id`` can be loaded. ``reason``, when known, says why (its file is missing, or lies
    outside dags_folder) and replaces the generic hint; ``broken`` counts the DAG files that failed to
    load, any of which may be where it is defined."""

    def __init__(self, dag_id: str, known: list[str] | None = None, reason: str | None = None,
                 broken: int = 0) -> None:
        self.dag_id, self.reason, self.broken = dag_id, reason, broken
        if reason:
            super().__init__(f"DAG '{dag_id}' is not available: {reason}.")
            return
        hint = f" Known DAGs: {', '.join(sorted(known))}." if known else (
            " Check `nbflow dags list` and the dags_folder setting."
        )
        if broken:
            files = "1 DAG file" if broken == 1 else f"{broken} DAG files"
            hint += f" {files} failed to load and may define it: nbflow dags list-import-errors."
        super().__init__(f"no DAG with id '{dag_id}'.{hint}")


class TaskNotFoundError(NotFoundError):
    def __init__(self, dag_id: str, task_id: str, known: list[str] | None = None) -> None:
        self.dag_id, self.task_id = dag_id, task_id
        hint = f" Its tasks: {', '.join(sorted(known))}." if known else ""
        super().__init__(f"DAG '{dag_id}' has no task '{task_id}'.{hint}")


class RunNotFoundError(NotFoundError):
    def __init__(self, dag_id: str, run_id: str) -> None:
        self.dag_id, self.run_id = dag_id, run_id
        super().__init__(
            f"DAG '{dag_id}' has no run '{run_id}'. List its runs with `nbflow dags runs {dag_id}`."
        )


class TryNotFoundError(NotFoundError):
    """Try ``try_number`` of a task instance has not run; ``tries`` are the ones that did."""

    def __init__(self, dag_id: str, task_id: str, run_id: str, try_number: int, tries: list[int]) -> None:
        self.dag_id, self.task_id, self.run_id, self.try_number, self.tries = dag_id, task_id, run_id, try_number, list(tries)
        ran = f"tries: {', '.join(str(t) for t in tries)}" if tries else "no try has run yet"
        super().__init__(
            _where(dag_id, task_id) + f"try {try_number} in run {run_id} has not run; {ran}. Leave out --try "
            "to see every try."
        )


class ConnectionNotFoundError(NotFoundError):
    """No connection ``conn_id``: neither ``NBFLOW_CONN_<ID>`` nor a row in the store."""

    def __init__(self, conn_id: str, known: list[str] | None = None) -> None:
        self.conn_id = conn_id
        hint = f" Known connections: {', '.join(sorted(known))}." if known else ""
        super().__init__(
            f"no connection '{conn_id}'.{hint} Add it with `nbflow connections add {conn_id} --conn-uri URI`, "
            f"or set the environment variable NBFLOW_CONN_{conn_id.upper()} to its URI."
        )


class VariableNotFoundError(NotFoundError):
    """No variable ``key``: neither ``NBFLOW_VAR_<KEY>`` nor a row in the store, and no default."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(
            f"no variable '{key}'. Set it with `nbflow variables set {key} VALUE` or the environment variable "
            f"NBFLOW_VAR_{key.upper()}, or pass a default (Variable.get('{key}', default_var=...))."
        )


class DagImportError(NbflowError):
    """The DAG file ``fileloc`` failed to load. With ``dag_id``: the DAG asked for is (or was) defined
    in that file, so the failure is the reason it is not available."""

    def __init__(self, fileloc: str, summary: str, traceback_text: str = "", dag_id: str | None = None) -> None:
        self.fileloc, self.summary, self.traceback_text, self.dag_id = fileloc, summary, traceback_text, dag_id
        head = f"DAG '{dag_id}' is not available: its file " if dag_id else "could not load DAGs from "
        tail = " failed to load" if dag_id else ""
        super().__init__(
            f"{head}{fileloc}{tail}: {summary.rstrip('.')}. Fix the file; the other DAG files "
            "keep loading, and `nbflow dags list-import-errors` shows the full traceback."
        )


class DagFileGoneError(DagImportError):
    """The file the store names for DAG ``dag_id`` is no longer there (moved or deleted outside
    Jupyter; a rename inside Jupyter is followed)."""

    def __init__(self, fileloc: str, dag_id: str) -> None:
        super().__init__(fileloc, "the file is gone", "", dag_id)
        NbflowError.__init__(
            self, f"DAG '{dag_id}': its file {fileloc} is gone (moved or deleted outside Jupyter). Open the "
            "notebook or file where the DAG is now and run its %%dag cell again (or put the file back).")


class InvalidRequestError(NbflowError):
    """A request (backfill, clear, mark, trigger, pools; a graph view asked to open, close or focus
    on something it cannot) that cannot be carried out as asked; the message says which value to
    change. Nothing was changed."""

    def __init__(self, message: str, dag_id: str | None = None) -> None:
        self.dag_id = dag_id
        super().__init__(_where(dag_id) + message)


class InvalidConfError(InvalidRequestError):
    """The ``conf`` given to a new run cannot be kept as it is: not a JSON object, a value JSON
    cannot carry (NaN, a datetime, a set), or more than ``max_conf_bytes`` of JSON. No run was made."""

    def __init__(self, problem: str, dag_id: str | None = None, fix: str | None = None) -> None:
        self.problem = problem
        super().__init__(
            f"the run's conf {problem}. "
            + (fix or "Give a JSON object of plain values (strings, finite numbers, booleans, null, lists "
               'and objects with string keys), e.g. {"day": "2024-06-01"}.')
            + " No run was made.",
            dag_id,
        )


class InvalidConnectionError(InvalidRequestError):
    """Connection ``conn_id`` (None when the id itself is the problem) cannot be used as given:
    ``problem`` says what is wrong and the message how to write it. Nothing was stored."""

    def __init__(self, conn_id: str | None, problem: str, fix: str | None = None) -> None:
        self.conn_id, self.problem = conn_id, problem
        who = f"connection '{conn_id}'" if conn_id else "the connection"
        super().__init__(
            f"{who}: {problem}. "
            + (fix or "Write it as a URI, type://login:password@host:port/schema?key=value "
               "(quote special characters in the login and password with %XX)")
            + "."
        )


class DagFileConflictError(NbflowError):
    """Writing the DAG file ``path`` would destroy someone's work: the file exists and nbflow did not
    write it (``other`` is None), or the DAG id is already defined in the file ``other``. Nothing
    was written."""

    def __init__(self, path: str, dag_id: str, other: str | None = None) -> None:
        self.path, self.dag_id, self.other = str(path), dag_id, other
        if other is None:
            message = (f"{path} exists and nbflow did not write it; pick another DAG id or move that file "
                       "(a file nbflow generated starts with a comment saying so, and only such a file is rewritten)")
        else:
            message = f"DAG id '{dag_id}' is already defined in {other}; pick another DAG id"
        super().__init__(message)


class PathNotAllowedError(NbflowError):
    """A path (a task's log or artifact as the store names it, or a notebook a client asked for)
    that resolves outside ``roots``, the folders nbflow may read files from. Nothing was read."""

    def __init__(self, path: str, roots: list[str], what: str = "file") -> None:
        self.path, self.roots, self.what = str(path), [str(r) for r in roots], what
        super().__init__(
            f"refusing to read the {what} {path}: it is outside {' and '.join(self.roots)}. Only files "
            "under these folders are served; move the file there or open it another way."
        )


class TemplateError(NbflowError):
    def __init__(
        self, message: str, dag_id: str | None = None, task_id: str | None = None,
        field: str | None = None, variable: str | None = None,
    ) -> None:
        self.dag_id, self.task_id, self.field, self.variable = dag_id, task_id, field, variable
        where = f"template field '{field}': " if field else ""
        super().__init__(_where(dag_id, task_id) + where + message)


class NotificationError(NbflowError):
    """A notification (an Apprise target) or an e-mail (SMTP) could not be delivered. ``targets``
    are the targets as shown to people (passwords and tokens masked); ``reason`` what went wrong.
    Raised by the sender; the engine writes it to the task's log and the task goes on."""

    def __init__(self, targets: list[str], reason: str, dag_id: str | None = None, task_id: str | None = None) -> None:
        self.targets, self.reason, self.dag_id, self.task_id = list(targets), reason, dag_id, task_id
        super().__init__(_where(dag_id, task_id) + f"could not notify {', '.join(targets) or 'anyone'}: {reason}")


class OutputError(NbflowError):
    pass


class OutputNotSerializableError(OutputError):
    def __init__(self, dag_id: str, task_id: str, type_name: str, reason: str) -> None:
        self.dag_id, self.task_id, self.type_name = dag_id, task_id, type_name
        super().__init__(
            _where(dag_id, task_id)
            + f"its return value of type {type_name} can be stored neither as JSON nor with "
            f"pickle ({reason}). Return plain data (numbers, strings, lists, dicts), or write the "
            "object to a file and return the file's path."
        )


class OutputTooLargeError(OutputError):
    def __init__(self, dag_id: str, task_id: str, size: int, limit: int) -> None:
        self.dag_id, self.task_id, self.size, self.limit = dag_id, task_id, size, limit
        super().__init__(
            _where(dag_id, task_id)
            + f"its return value takes {size:,} bytes, over the limit of {limit:,} bytes "
            "(setting max_output_bytes). Write large data to a file and return its path, or raise "
            "the limit with NBFLOW_MAX_OUTPUT_BYTES."
        )


class OutputOnClusterError(OutputError):
    """A task's output was kept on the Dask cluster (setting ``dask_keep_outputs_over``) and what
    asked for its value could not get it there: ``name`` is its dataset name on the cluster."""

    def __init__(self, dag_id: str | None, task_id: str | None, name: str, reason: str, fix: str) -> None:
        self.dag_id, self.task_id, self.name, self.reason = dag_id, task_id, name, reason
        super().__init__(
            _where(dag_id, task_id) + f"its return value was kept on the Dask cluster as dataset {name!r} "
            f"(setting dask_keep_outputs_over) and {reason}. {fix}"
        )


class TaskError(NbflowError):
    pass


class TaskFailedError(TaskError):
    def __init__(self, dag_id: str, task_id: str, error: str, traceback_text: str = "") -> None:
        self.dag_id, self.task_id, self.error, self.traceback_text = dag_id, task_id, error, traceback_text
        super().__init__(_where(dag_id, task_id) + f"failed: {error}")


class TaskTimeoutError(TaskError):
    def __init__(self, dag_id: str | None, task_id: str | None, timeout: float) -> None:
        self.dag_id, self.task_id, self.timeout = dag_id, task_id, timeout
        super().__init__(
            _where(dag_id, task_id)
            + f"ran longer than its execution_timeout of {timeout:g} s and was stopped. Raise "
            "execution_timeout or make the task faster."
        )


class MemoryLimitError(TaskError):
    """A try's processes (the task and everything it started) went over its ``memory_limit`` and
    were killed; ``peak`` is the most they held (bytes, RSS summed over the process tree). With
    ``peak`` None the limit could not be enforced where the task runs (``executor`` names where)."""

    def __init__(self, dag_id: str | None, task_id: str | None, limit: int, peak: int | None = None,
                 executor: str = "") -> None:
        from nbflow.memory import format_size

        self.dag_id, self.task_id, self.limit, self.peak, self.executor = dag_id, task_id, limit, peak, executor
        if peak is None:
            message = (f"has a memory_limit of {format_size(limit)}, which the {executor or 'in-process'} executor "
                       "cannot enforce: its tasks run inside the host's own process. Run it with the process "
                       "executor (executor = \"process\", the default of the daemon and the Jupyter server), or "
                       "remove memory_limit (and the task_memory_limit setting) for this host.")
        else:
            message = (f"used {format_size(peak)} of memory (RSS of the task and the processes it started), over "
                       f"its memory_limit of {format_size(limit)}, and was killed. Raise memory_limit or make "
                       "the task use less memory.")
        super().__init__(_where(dag_id, task_id) + message)


class SensorTimeoutError(TaskError):
    """A sensor gave up: what it waits for did not happen within its own ``timeout``.

    Distinct from :class:`TaskTimeoutError`, which stops a task that runs too long: a sensor that
    times out ran as long as it was allowed to and found nothing, so the fix is elsewhere.
    """

    def __init__(self, dag_id: str | None, task_id: str | None, timeout: float, waited_for: str = "") -> None:
        self.dag_id, self.task_id, self.timeout, self.waited_for = dag_id, task_id, timeout, waited_for
        what = f" ({waited_for})" if waited_for else ""
        super().__init__(
            _where(dag_id, task_id)
            + f"the sensor's condition{what} was not met within its timeout of {timeout:g} s. Check "
            "that what it waits for can happen, raise the sensor's timeout=..., or pass "
            "soft_fail=True to end the task as skipped instead of failed."
        )


class BashCommandError(TaskError):
    def __init__(self, task_id: str | None, returncode: int, tail: str = "") -> None:
        self.task_id, self.returncode, self.tail = task_id, returncode, tail
        more = f" Last output: {tail}" if tail else ""
        super().__init__(
            _where(None, task_id)
            + f"the bash command exited with code {returncode}. A non-zero exit fails the task "
            f"(exit 99 skips it).{more}"
        )


class HttpError(TaskError):
    """An HTTP request of a task failed. ``url`` never holds credentials (they travel in a header);
    ``status`` is the answer's status code, None when no answer came."""

    def __init__(self, dag_id: str | None, task_id: str | None, method: str, url: str, problem: str,
                 fix: str = "", status: int | None = None) -> None:
        self.dag_id, self.task_id, self.method, self.url, self.status = dag_id, task_id, method, url, status
        self.problem = problem
        super().__init__(_where(dag_id, task_id) + f"{method} {url} {problem}." + (f" {fix}." if fix else ""))


class RemoteTaskError(TaskError):
    """Stands in for an exception raised in a worker process that could not be sent back whole.

    Some exceptions do not pickle (they hold a lock, a socket, a local class) or do not unpickle
    (an ``__init__`` with required arguments). Rather than lose the failure, the worker sends its
    type name, message and traceback text, and this error carries them.
    """

    def __init__(self, type_name: str, message: str, traceback_text: str = "") -> None:
        self.type_name, self.message, self.traceback_text = type_name, message, traceback_text
        super().__init__(
            f"{type_name}: {message} (raised in a worker process; the exception itself could not be "
            "sent back, so only its type name, message and traceback text are kept)"
        )


class WorkerLostError(TaskError):
    def __init__(self, task_id: str | None, detail: str) -> None:
        self.task_id, self.detail = task_id, detail
        super().__init__(
            _where(None, task_id)
            + f"the worker process running it died ({detail}). The task is retried if it has "
            "retries left; check the task log and the machine's memory."
        )


class ExecutorUnavailableError(TaskError):
    """A task asks for an executor (``executor="dask"``) this host cannot start: its package is not
    installed, or its settings are wrong. Each try sent to it fails with this, the host goes on."""

    def __init__(self, name: str, detail: str) -> None:
        self.name, self.detail = name, detail
        hint = ' (pip install "nbflow[dask]")' if name == "dask" else ""
        super().__init__(
            f"this host cannot start the {name} executor the task asks for ({detail}). Install what it "
            f"needs{hint} or fix its settings (nbflow config list), or leave the task's executor option out."
        )


class NotebookError(TaskError):
    """A notebook task could not run or did not finish; ``.notebook`` is the notebook's path."""

    notebook: str = ""


class NotebookNotFoundError(NotebookError):
    def __init__(self, notebook: str) -> None:
        self.notebook = notebook
        super().__init__(
            f"there is no notebook at {notebook}. Check the notebook= path: a relative path is taken "
            "from the working directory of the process running the task."
        )


class NotebookKernelError(NotebookError):
    """The kernel the notebook names (or ``kernel_name``) is not installed here. The output
    notebook, with the parameters injected, is kept, as papermill keeps it."""

    def __init__(self, notebook: str, kernel: str, installed: list[str], output_path: str) -> None:
        self.notebook, self.kernel, self.installed, self.output_path = notebook, kernel, list(installed), output_path
        super().__init__(
            f"notebook {notebook}: no kernel named {kernel!r} is installed here (installed: "
            f"{', '.join(installed) or 'none'}). Install it (for a Python environment: `python -m ipykernel "
            f"install --user --name {kernel}`) or pass kernel_name= one of those. The notebook with its "
            f"parameters is kept at {output_path}"
        )


class NotebookCellError(NotebookError):
    """A cell raised. ``.cell`` counts the input notebook's code cells from 1 (injected cells left
    out); ``.execution_count`` is its ``In [n]`` in the output notebook, the number the message and
    papermill's error banner use; ``.line`` the line of the cell that raised, when the traceback says."""

    def __init__(
        self, notebook: str, cell: int, source: str, ename: str, evalue: str, output_path: str,
        execution_count: int | None = None, line: int | None = None,
    ) -> None:
        self.notebook, self.cell, self.source = notebook, cell, source
        self.ename, self.evalue, self.output_path = ename, evalue, output_path
        self.execution_count, self.line = execution_count, line
        lines = source.splitlines()
        if line is not None and 1 <= line <= len(lines):
            quoted = f"    line {line}: {lines[line - 1].strip()}"
        else:
            quoted = "\n".join("    " + text for text in lines[:3]) + ("\n    ..." if len(lines) > 3 else "")
        where = f"cell In [{execution_count}]" if execution_count else f"code cell {cell}"
        super().__init__(
            f"notebook {notebook}: {where} raised {ename}: {evalue}\n{quoted}\n"
            f"The output notebook, with the error, is kept at {output_path}"
        )


class NotebookTimeoutError(NotebookError):
    """``.setting`` is ``cell_timeout`` or ``execution_timeout``, whichever was exceeded."""

    def __init__(
        self, notebook: str, cell: int, source: str, timeout: float, setting: str, output_path: str,
    ) -> None:
        self.notebook, self.cell, self.source = notebook, cell, source
        self.timeout, self.setting, self.output_path = timeout, setting, output_path
        head = "\n".join("    " + line for line in source.splitlines()[:3])
        super().__init__(
            f"notebook {notebook}: code cell {cell} was still running when its {setting} of {timeout:g} s "
            f"ran out, and the kernel was stopped.\n{head}\nRaise {setting} or make the cell faster; "
            f"the output notebook so far is kept at {output_path}"
        )


class StoreError(NbflowError):
    pass


class SchemaVersionError(StoreError):
    def __init__(self, url: str, found: str | None, expected: str) -> None:
        self.url, self.found, self.expected = url, found, expected
        if found is None:
            what = "has no nbflow schema"
            fix = "Run `nbflow db init` to create it."
        else:
            what = f"has schema version {found}, this nbflow needs {expected}"
            fix = (
                "Run `nbflow db upgrade` to migrate it (a newer schema means this nbflow is older "
                "than the database: upgrade nbflow)."
            )
        super().__init__(f"the database {url} {what}. {fix}")


class SecretKeyError(StoreError):
    """The Fernet key that encrypts connection passwords, extras and variables cannot be used:
    ``problem`` says why, ``path`` is the key file when the key comes from one. Nothing was read
    or written."""

    def __init__(self, problem: str, fix: str, path: str | None = None) -> None:
        self.problem, self.fix, self.path = problem, fix, path
        super().__init__(f"{problem}. {fix}.")


class DecryptionError(SecretKeyError):
    """``what`` (e.g. "the password of connection 'db'") was encrypted with a key other than the ones
    in use (from ``source``: the setting fernet_key or the key file). Nothing was changed."""

    def __init__(self, what: str, source: str) -> None:
        self.what, self.source = what, source
        super().__init__(
            f"{what} cannot be decrypted with the Fernet key from {source}: it was encrypted with another key",
            "Set fernet_key (NBFLOW_FERNET_KEY) to the key it was written with (several keys may be given, "
            "comma-separated: the first encrypts, all decrypt), or store it again under the current key",
        )


class TransientStoreError(StoreError):
    """The store could not do this now, but nothing is wrong with the request: the database is
    locked, restarting or unreachable, or it aborted the transaction (a serialization conflict, a
    deadlock). The transaction was rolled back as a whole. A scheduler host keeps working and retries
    (within ``db_outage_grace``); a command reports it and stops. Errors that are not transient
    (a schema mismatch, a constraint violation, bad SQL) are not of this kind: retrying cannot help."""


class DatabaseLockedError(TransientStoreError):
    def __init__(self, url: str, detail: str = "") -> None:
        self.url = url
        super().__init__(
            f"the store is busy: the database {url} stayed locked by another process past the busy timeout"
            + (f" ({detail})" if detail else "")
            + ". Nothing was lost; retry, stop the other writer, or raise NBFLOW_DB_BUSY_TIMEOUT."
        )


class StoreUnavailableError(TransientStoreError):
    """The database at ``url`` (shown without its password) could not be reached: the server is down,
    the host or port is wrong, or the login was refused. ``source`` says where the URL came from
    (see :class:`ConfigError`), when known. A scheduler host retries; a command stops."""

    def __init__(self, url: str, detail: str, source: str | None = None) -> None:
        self.url, self.detail, self.source = url, " ".join(str(detail).split()), source
        if source is None or source == "default":
            origin = "the setting database_url"
        elif source.startswith("NBFLOW_"):
            origin = f"the setting database_url (from the environment variable {source})"
        else:
            origin = f"the setting database_url (from {source})"
        super().__init__(
            f"cannot connect to the store {url} ({self.detail}). Check that the database server is running "
            f"and reachable, or fix {origin}."
        )


class StoreInterruptedError(TransientStoreError):
    """A statement on the store at ``url`` failed half-way for a reason that passes: the connection was
    closed or reset, the server is shutting down or starting up, or the database aborted the
    transaction to resolve a conflict. ``detail`` is the driver's message."""

    def __init__(self, url: str, detail: str) -> None:
        self.url, self.detail = url, " ".join(str(detail).split())
        super().__init__(
            f"the store {url} broke off a transaction ({self.detail}); it was rolled back, nothing of it was "
            "stored. A scheduler host retries by itself; for a command, run it again once the database answers."
        )


class IllegalTransitionError(NbflowError):
    def __init__(self, kind: str, current: str, new: str) -> None:
        self.kind, self.current, self.new = kind, current, new
        super().__init__(
            f"a {kind} cannot go from '{current}' to '{new}'; this is a bug in nbflow, please report it."
        )


class NoTaskContextError(NbflowError):
    def __init__(self) -> None:
        super().__init__(
            "get_current_context() was called outside a running task. Call it from inside a task's "
            "function (or an operator's execute), where the run's context exists."
        )


class TaskSignal(NbflowError):
    """Not a failure: raised by a task to end itself early in a given state."""


class FailTask(NbflowError):
    """Raise inside a task to fail it now, without its retries (Airflow's ``AirflowFailException``):
    for a failure another try cannot fix, such as bad input or a missing credential."""

    def __init__(self, reason: str = "failed by the task") -> None:
        self.reason = reason
        super().__init__(reason)


class SkipTask(TaskSignal):
    """Raise inside a task to end it as skipped (its downstream follows its trigger rules)."""

    def __init__(self, reason: str = "skipped by the task") -> None:
        self.reason = reason
        super().__init__(reason)


class RescheduleTask(TaskSignal):
    """Raise inside a task to end this attempt without using up a try, and run again at
    ``reschedule_at`` (an aware datetime). Sensors in ``mode="reschedule"`` do this between pokes."""

    def __init__(self, reschedule_at: Any) -> None:
        self.reschedule_at = reschedule_at
        super().__init__(f"rescheduled to {reschedule_at.isoformat() if hasattr(reschedule_at, 'isoformat') else reschedule_at}")
