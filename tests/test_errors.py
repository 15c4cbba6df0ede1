"""Errors: one root, messages that say what to do, and they survive pickling across processes."""

from __future__ import annotations

import inspect
import pickle

import pytest

import nbflow.errors as errors

SAMPLES = [
    errors.CycleError("d", ["a", "b", "a"]),
    errors.DuplicateTaskIdError("d", "t"),
    errors.TaskOutsideDagError("t"),
    errors.UnknownTriggerRuleError("x", ["all_success"], "d", "t"),
    errors.UnknownArgumentError("retires", ["retries"], "default_args", "d"),
    errors.InvalidDateError("start_date", "soon", "d"),
    errors.ScheduleError("* *", "2 fields", "d", field=None),
    errors.TimezoneError("Mars/X", "d"),
    errors.DagNotFoundError("d", ["e"]),
    errors.TaskNotFoundError("d", "t", ["u"]),
    errors.RunNotFoundError("d", "r"),
    errors.TryNotFoundError("d", "t", "r", 2, [1]),
    errors.DagNotFoundError("d", reason="its file /dags/d.py is missing"),
    errors.DagImportError("f.py", "SyntaxError"),
    errors.InvalidRequestError("bad", "d"),
    errors.DagFileConflictError("/dags/d.py", "d"),
    errors.DagFileConflictError("/dags/d.py", "d", "/dags/other.py"),
    errors.PathNotAllowedError("/etc/passwd", ["/home/u/nbflow"], "log"),
    errors.TemplateError("bad", "d", "t", "bash_command", "x"),
    errors.OutputNotSerializableError("d", "t", "Lock", "cannot pickle"),
    errors.OutputTooLargeError("d", "t", 10, 5),
    errors.OutputOnClusterError("d", "t", "nbflow-output-x", "the cluster no longer holds it", "Clear t too."),
    errors.TaskFailedError("d", "t", "boom"),
    errors.TaskTimeoutError("d", "t", 1.5),
    errors.BashCommandError("t", 3, "oops"),
    errors.WorkerLostError("t", "exit code -9"),
    errors.SchemaVersionError("sqlite:///x", "0001", "0002"),
    errors.DatabaseLockedError("sqlite:///x"),
    errors.StoreInterruptedError("postgresql://u:***@db/x", "terminating connection due to administrator command"),
    errors.ConfigError("executor", "gpu", "unknown"),
    errors.ConfigError("executor", "gpu", "unknown", source="NBFLOW_EXECUTOR"),
    errors.ConfigFileError("/home/u/nbflow/nbflow.toml", "not valid TOML", 3),
    errors.StoreUnavailableError("postgresql://u:***@db/x", "connection refused", "NBFLOW_DATABASE_URL"),
    errors.DagImportError("f.py", "CycleError: a >> b >> a", "", dag_id="d"),
    errors.SkipTask("nothing to do"),
    errors.NoTaskContextError(),
]


def test_every_error_class_is_in_the_documented_tree_under_one_root() -> None:
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, Exception) and c.__module__ == errors.__name__]
    for cls in classes:
        assert issubclass(cls, errors.NbflowError), cls
        assert cls.__name__ in errors.__doc__, f"{cls.__name__} is missing from the tree in nbflow/errors.py"


@pytest.mark.parametrize("error", SAMPLES, ids=lambda e: type(e).__name__)
def test_errors_pickle_whole(error: errors.NbflowError) -> None:
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is type(error) and str(clone) == str(error) and clone.__dict__ == error.__dict__


def test_schema_error_says_which_command_fixes_it() -> None:
    assert "nbflow db init" in str(errors.SchemaVersionError("sqlite:///x", None, "0001"))
    assert "nbflow db upgrade" in str(errors.SchemaVersionError("sqlite:///x", "0000", "0001"))
