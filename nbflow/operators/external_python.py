"""Python callables run by another interpreter: ``ExternalPythonOperator`` and
``PythonVirtualenvOperator``.

For a task whose libraries clash with nbflow's, or need another Python. As in Airflow, the
function's own source is written to a file and run there, and its arguments and return value travel
pickled (data, never code): so the function must be a plain ``def`` that imports what it uses inside
its body, without closures. Context values travel too when the function names them (``ds``,
``logical_date``, ``params``, ...), except the live objects (``ti``, ``dag``, ``task``, ``macros``).
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

from nbflow.errors import DagDefinitionError, InvalidOptionError, TaskFailedError, TaskTimeoutError
from nbflow.operators.base import context_arguments
from nbflow.operators.python import PythonOperator, _positional_names

#: context values that can travel to another interpreter: plain data, dates and times
TRAVELLING_CONTEXT = (
    "ds", "ds_nodash", "ds_utc", "ts", "ts_nodash", "ts_utc", "run_id", "params", "conf",
    "logical_date", "logical_date_utc", "data_interval_start", "data_interval_end",
    "data_interval_start_utc", "data_interval_end_utc", "templates_dict",
)
#: context values that are live objects of this process and cannot
STAYING_CONTEXT = ("ti", "task_instance", "dag", "task", "dag_run", "macros")
PROTOCOL = 4
_MAIN = Path(__file__).with_name("_external_main.py")


def function_source(fn: Callable[..., Any], dag_id: str | None, task_id: str) -> tuple[str, str, int]:
    """The source of ``fn`` without its decorators, its file and its first line; or a
    :class:`DagDefinitionError` saying why it cannot run in another interpreter."""
    def refuse(problem: str) -> DagDefinitionError:
        return DagDefinitionError(
            f"python_callable {getattr(fn, '__qualname__', fn)!r} {problem}. A function run by another "
            "interpreter travels as its source: write it as a plain module-level or nested def that "
            "imports what it uses inside its body and takes everything else as arguments.",
            dag_id, task_id,
        )

    if not inspect.isfunction(fn):
        raise refuse(f"is a {type(fn).__name__}, not a function defined with def")
    if fn.__name__ == "<lambda>":
        raise refuse("is a lambda, which has no source of its own to run")
    if inspect.iscoroutinefunction(fn) or inspect.isgeneratorfunction(fn):
        raise refuse("is an async or generator function")
    if fn.__closure__:
        names = ", ".join(fn.__code__.co_freevars)
        raise refuse(f"is a closure over {names}, which the other interpreter would not have")
    try:
        lines, first = inspect.getsourcelines(fn)
    except (OSError, TypeError):
        raise refuse("has no source that can be read (define it in a file or a notebook cell)") from None
    source = textwrap.dedent("".join(lines))
    try:
        tree = ast.parse(source)
    except SyntaxError:
        raise refuse("has a source that cannot be parsed on its own") from None
    node = tree.body[0] if tree.body else None
    if not isinstance(node, ast.FunctionDef) or node.name != fn.__name__:
        raise refuse("has a source that is not its def statement")
    # from the def line on: decorators such as @task.external_python(...) stay behind
    body = "\n".join(source.splitlines()[node.lineno - 1:]) + "\n"
    return body, fn.__code__.co_filename, first + node.lineno - 1


class _OtherInterpreterOperator(PythonOperator):
    """Runs its callable's source in the interpreter :meth:`interpreter` names."""

    kind: ClassVar[str] = "python"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source, self.filename, self.first_line = function_source(self.python_callable, self.dag_id, self.task_id)
        try:
            parameters = inspect.signature(self.python_callable).parameters
        except (TypeError, ValueError):
            parameters = {}
        staying = [name for name in parameters if name in STAYING_CONTEXT]
        if staying:
            raise DagDefinitionError(
                f"python_callable asks for {', '.join(staying)}, which live in this process and cannot "
                f"travel to another interpreter; ask for plain values instead ({', '.join(TRAVELLING_CONTEXT[:9])}, ...)",
                self.dag_id, self.task_id,
            )

    def interpreter(self, context: dict[str, Any]) -> str:
        """The path of the Python interpreter to run the callable with."""
        raise NotImplementedError

    def execute(self, context: dict[str, Any]) -> Any:
        python = self.interpreter(context)
        plain = {key: context[key] for key in TRAVELLING_CONTEXT if key in context}
        if self.templates_dict is not None:
            plain["templates_dict"] = self.templates_dict
        args, kwargs = list(self.op_args), dict(self.op_kwargs)
        given = set(kwargs) | _positional_names(self.python_callable, len(args))
        kwargs.update(context_arguments(self.python_callable, plain, given))
        call = {"name": self.python_callable.__name__, "filename": self.filename, "first_line": self.first_line,
                "args": args, "kwargs": kwargs}
        try:
            data = pickle.dumps(call, protocol=PROTOCOL)
        except Exception as exc:
            raise self._failed(f"its arguments cannot be pickled to send them to {python}: {exc}") from None
        with tempfile.TemporaryDirectory(prefix="nbflow-external-") as folder:
            Path(folder, "function.py").write_text(self.source, encoding="utf-8")
            Path(folder, "call.pickle").write_bytes(data)
            shutil.copyfile(_MAIN, Path(folder, "main.py"))
            code = self._run([python, str(Path(folder, "main.py")), folder])
            result_path = Path(folder, "result.pickle")
            if not result_path.exists():
                raise self._failed(f"the interpreter {python} exited with code {code} before returning a result "
                                   "(is it Python 3? see the log for what it printed)")
            try:
                result = pickle.loads(result_path.read_bytes())
            except Exception as exc:
                raise self._failed(f"the return value from {python} cannot be read here: {type(exc).__name__}: "
                                   f"{exc} (return plain data: numbers, strings, lists, dicts)") from None
        if not result["ok"]:
            sys.stderr.write(result["traceback"])
            raise self._failed(f"{result['type']}: {result['message']} (raised in {python})", result["traceback"])
        return result["value"]

    def _run(self, command: list[str]) -> int:
        """Run ``command`` in its own process group, its output to the task log; kill the group on
        timeout or when the try is stopped, so nothing outlives the try."""
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            out, err = process.communicate(timeout=self.execution_timeout_seconds)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            process.communicate()
            raise TaskTimeoutError(self.dag_id, self.task_id, float(self.execution_timeout_seconds or 0)) from None
        except BaseException:
            _kill_group(process)
            raise
        sys.stdout.write(out.decode("utf-8", errors="replace"))
        sys.stderr.write(err.decode("utf-8", errors="replace"))
        return process.returncode

    def _failed(self, problem: str, traceback_text: str = "") -> TaskFailedError:
        return TaskFailedError(self.dag_id or "", self.task_id, problem, traceback_text)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["interpreter"] = type(self).__name__
        return info


class ExternalPythonOperator(_OtherInterpreterOperator):
    """Calls ``python_callable(*op_args, **op_kwargs)`` in the interpreter ``python`` (the path of
    an existing ``python`` executable, such as another venv's ``bin/python``); its return value,
    which must unpickle here, is the task's output. Needs no nbflow in that interpreter."""

    def __init__(self, *, python: str | os.PathLike[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(python, (str, os.PathLike)) or not str(python).strip():
            raise InvalidOptionError("python", python, "give the path of a Python interpreter, e.g. '/opt/py311/bin/python'",
                                     self.dag_id, self.task_id)
        self.python = str(python)

    def interpreter(self, context: dict[str, Any]) -> str:
        path = self.python
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            problem = "does not exist" if not os.path.exists(path) else "is not an executable file"
            raise self._failed(f"python={path!r} {problem}; give the path of a Python interpreter on this machine "
                               "(e.g. a venv's bin/python)")
        return path


class PythonVirtualenvOperator(_OtherInterpreterOperator):
    """Calls ``python_callable`` in a virtual environment with ``requirements`` installed by pip.

    The environment is made once (``python -m venv``) and kept under ``NBFLOW_HOME/venvs``, named by
    a hash of the requirements, the options and this Python's version, so later runs start at once
    and a change of requirements makes a new one. ``system_site_packages`` (default True, as in
    Airflow) lets it see this interpreter's packages; ``pip_install_options`` are passed to pip.
    """

    def __init__(
        self,
        *,
        requirements: str | Sequence[str] | None = None,
        system_site_packages: bool = True,
        pip_install_options: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if requirements is None:
            wanted: list[str] = []
        elif isinstance(requirements, str):
            wanted = [line.strip() for line in requirements.splitlines() if line.strip()]
        elif isinstance(requirements, (list, tuple)) and all(isinstance(r, str) and r.strip() for r in requirements):
            wanted = [r.strip() for r in requirements]
        else:
            raise InvalidOptionError("requirements", requirements, "give a list of pip requirements such as ['six==1.16.0'], "
                                     "or None", self.dag_id, self.task_id)
        options = list(pip_install_options or ())
        if not all(isinstance(o, str) for o in options):
            raise InvalidOptionError("pip_install_options", pip_install_options, "give a list of strings", self.dag_id, self.task_id)
        self.requirements = wanted
        self.system_site_packages = bool(system_site_packages)
        self.pip_install_options = options

    def venv_key(self) -> str:
        """The name of this task's environment: equal for equal requirements, options and Python."""
        spec = {"requirements": sorted(self.requirements), "system_site_packages": self.system_site_packages,
                "pip_install_options": self.pip_install_options, "python": sys.version, "base": sys.base_prefix}
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]

    def interpreter(self, context: dict[str, Any]) -> str:
        return str(self.ensure_venv())

    def ensure_venv(self) -> Path:
        """The environment's python, made and filled first if it is not there yet. One process makes
        it while the others wait on a lock; one that failed halfway is made again."""
        import fcntl

        from nbflow.settings import get_settings

        root = get_settings().home / "venvs"
        root.mkdir(parents=True, exist_ok=True)
        key = self.venv_key()
        target = root / key
        python = target / "bin" / "python"
        ready = target / "nbflow-venv.json"
        if ready.exists():
            return python
        with open(root / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if ready.exists():
                return python
            shutil.rmtree(target, ignore_errors=True)
            print(f"making the virtual environment {target} for {self.requirements or 'no requirements'}", flush=True)
            command = [sys.executable, "-m", "venv", str(target)]
            if self.system_site_packages:
                command.insert(3, "--system-site-packages")
            if not self.requirements:
                command.insert(3, "--without-pip")
            self._setup(command, "python -m venv")
            if self.requirements:
                self._setup([str(python), "-m", "pip", "install", "--no-input", *self.pip_install_options,
                             *self.requirements], "pip install " + " ".join(self.requirements))
            ready.write_text(json.dumps({"requirements": self.requirements, "python": sys.version,
                                         "system_site_packages": self.system_site_packages}))
        return python

    def _setup(self, command: list[str], what: str) -> None:
        done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip()[-1500:]
            raise self._failed(f"{what} failed with exit code {done.returncode}, so the virtual environment could "
                               f"not be made; check the requirements. {tail}")


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
