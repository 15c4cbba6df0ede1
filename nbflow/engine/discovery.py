"""Finding DAGs: load the ``.py`` files and notebooks of ``dags_folder`` and keep every DAG they build.

A file that fails to import (a syntax error, an exception, a DAG with a cycle) becomes an import
error with its traceback; it never stops the other files from loading. Each file is imported as its
own module, under a name derived from its path, so two files may both be called ``etl.py``.

A notebook (``.ipynb``) is read, never run in a kernel: only its ``%%dag`` cells and the code cells
tagged ``nbflow`` (imports, helper functions) are executed, in order, in a fresh module namespace.
Exploration cells, plots and everything else are left alone. ``%%dag`` lines are parsed by
:func:`parse_dag_line`, the same parser the ``%%dag`` cell magic uses.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import importlib.util
import json
import linecache
import os
import re
import shlex
import stat
import sys
import traceback
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nbflow.context import reset_dag_collector, set_dag_collector
from nbflow.errors import DagDefinitionError, DagNotFoundError

if TYPE_CHECKING:
    from nbflow.dag import DAG
    from nbflow.settings import Settings


@dataclass
class ImportFailure:
    fileloc: str
    summary: str
    traceback: str


@dataclass
class DagBag:
    """The DAGs found, by id, and the files that failed."""

    dags: dict[str, DAG] = field(default_factory=dict)
    failures: dict[str, ImportFailure] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    #: the folders scanned (as given and resolved): an import error recorded for a file in one of
    #: them that is no longer among ``files`` (deleted, renamed) is no longer true
    folders: list[str] = field(default_factory=list)

    def get(self, dag_id: str) -> DAG:
        try:
            return self.dags[dag_id]
        except KeyError:
            raise DagNotFoundError(dag_id, list(self.dags)) from None


def module_name(path: Path) -> str:
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    return f"nbflow_dags.{stem}_{digest}"


def load_file(path: str | os.PathLike[str]) -> tuple[list[DAG], ImportFailure | None]:
    """Import one DAG file (or notebook); return the DAGs it built, or how it failed."""
    from nbflow.dag import DAG

    file = Path(path).resolve()
    if file.suffix == ".ipynb":
        return load_notebook(file)
    found: list[DAG] = []
    name = module_name(file)
    token = set_dag_collector(found.append)
    try:
        spec = importlib.util.spec_from_file_location(name, file)
        if spec is None or spec.loader is None:
            return [], ImportFailure(str(file), "not a loadable Python file", "")
        module = importlib.util.module_from_spec(spec)
        module.__nbflow_dag_file__ = True  # type: ignore[attr-defined]
        sys.modules.setdefault("nbflow_dags", _namespace())
        sys.modules[name] = module
        spec.loader.exec_module(module)
    except BaseException as exc:  # a DAG file may raise anything, SystemExit included
        sys.modules.pop(name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        return [], ImportFailure(str(file), _summary(exc), _traceback_in(exc, str(file)))
    finally:
        reset_dag_collector(token)
    for value in vars(module).values():
        if isinstance(value, DAG) and all(value is not d for d in found):
            found.append(value)
    for built in found:
        if built.fileloc is None or not str(built.fileloc).endswith(".py"):
            built.fileloc = str(file)
    return found, None


def _namespace() -> object:
    import types

    package = types.ModuleType("nbflow_dags")
    package.__path__ = []  # type: ignore[attr-defined]
    return package


def _summary(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").partition(".")[0] == "airflow":
        return (f"the file imports Airflow ({exc.name}); point its imports at nbflow with "
                "`nbflow import-airflow FILE --write`, which also lists what nbflow does not have")
    if isinstance(exc, SystemExit):
        return (f"SystemExit: the file called sys.exit({exc.code!r}) while loading; a DAG file must only define "
                "DAGs, never end its process")
    return f"{type(exc).__name__}: {exc}"


def _traceback_in(exc: BaseException, fileloc: str) -> str:
    """The traceback from the DAG file's first frame on: nbflow's import machinery is noise."""
    lines = traceback.format_exception(exc)
    for index, line in enumerate(lines):
        if fileloc in line:
            return "Traceback (most recent call last):\n" + "".join(lines[index:])
    return "".join(lines)


def dag_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The ``.py`` files under ``folder`` that mention nbflow, or Airflow and a DAG (others are helpers,
    not DAG files), and the notebooks that have a ``%%dag`` cell."""
    return scan_folder(folder)[0]


_SUFFIXES = (".py", ".ipynb")


def _link_problem(path: Path, exc: OSError) -> ImportFailure:
    """The import error of a link that cannot be followed: a loop, or a link to nothing."""
    if exc.errno == errno.ELOOP:
        what = "symbolic link loop: the link leads back to itself"
    else:
        what = f"broken symbolic link: it points to {os.readlink(path)!r}, which does not exist"
    return ImportFailure(str(path), f"{what}; remove the link or point it at a real file or folder", "")


def scan_folder(folder: str | os.PathLike[str]) -> tuple[list[Path], list[ImportFailure]]:
    """The DAG files under ``folder`` (see :func:`dag_files`) and the links that could not be followed.

    Links to folders are followed, so a DAG folder may gather others by linking them in; a link back
    to a folder the walk is already in is a loop, reported as a failure naming the link and never
    followed, as is a link that leads to itself or to nothing. Names starting with ``.`` or ``_``
    are skipped, and a file reached by two ways is listed once.
    """
    root = Path(folder)
    if not root.is_dir():
        return [], []
    candidates: list[Path] = []
    failures: list[ImportFailure] = []
    walked: set[tuple[int, int]] = set()  # each folder once, however many links lead to it

    def walk(directory: Path, ancestors: frozenset[tuple[int, int]]) -> None:
        try:
            with os.scandir(directory) as entries:
                listed = sorted(entries, key=lambda entry: entry.name)
        except OSError:
            return
        for entry in listed:
            if entry.name.startswith((".", "_")):
                continue
            path = Path(entry.path)
            try:
                info = os.stat(path)  # follows links: a loop or a dangling link raises here
            except OSError as exc:
                if entry.is_symlink() and (exc.errno == errno.ELOOP or path.suffix in _SUFFIXES):
                    failures.append(_link_problem(path, exc))
                continue
            if stat.S_ISDIR(info.st_mode):
                key = (info.st_dev, info.st_ino)
                if key in ancestors:
                    failures.append(ImportFailure(
                        str(path), f"symbolic link loop: the link leads back to {os.path.realpath(path)}, a "
                        "folder that contains it; remove the link or point it elsewhere", ""))
                elif key not in walked:
                    walked.add(key)
                    walk(path, ancestors | {key})
            elif path.suffix in _SUFFIXES and stat.S_ISREG(info.st_mode):
                candidates.append(path)

    top = os.stat(root)
    walked.add((top.st_dev, top.st_ino))
    walk(root, frozenset(walked))
    files: list[Path] = []
    seen: set[str] = set()
    for path in sorted(candidates):
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if path.suffix == ".ipynb":
            wanted = "%%dag" in text
        else:
            # an Airflow DAG file dropped here is loaded too, so that it fails saying how to move it over
            wanted = "nbflow" in text or ("airflow" in text and "dag" in text.lower())
        if wanted:
            files.append(path)
    return files, failures


#: loads a batch of DAG files: each file's resolved path -> the DAGs it built, or how it failed
Loader = Callable[[list[Path]], Mapping[str, "tuple[list[DAG], ImportFailure | None]"]]


def load_here(files: list[Path]) -> dict[str, tuple[list[DAG], ImportFailure | None]]:
    """Load DAG files in this process (a notebook kernel defining its own DAGs); scheduler hosts and
    commands load them in a separate process instead (:mod:`nbflow.engine.dagparsing`)."""
    return {str(file.resolve()): load_file(file) for file in files}


def ensure_dags_folder(settings: Settings) -> Path:
    """Create ``dags_folder`` when it is missing (a fresh ``NBFLOW_HOME``): an empty folder is no
    error, and the place to put DAG files should exist. A folder that cannot be made is left to
    :func:`collect`, which reports it with the fix."""
    folder = Path(settings.dags_folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass
    return folder


def collect(paths: list[str | os.PathLike[str]], *, load: Loader | None = None) -> DagBag:
    """Load DAG files and folders of DAG files, with ``load`` (default: in this process)."""
    bag = DagBag()
    found: list[Path] = []
    for entry in paths:
        entry_path = Path(entry)
        if not entry_path.exists() and entry_path.is_symlink():  # a link loop, or a link to nothing
            error = OSError(errno.ENOENT, "no such file")
            try:
                os.stat(entry_path)
            except OSError as exc:
                error = exc
            failure = _link_problem(entry_path, error)
            bag.files.append(failure.fileloc)
            bag.failures[failure.fileloc] = failure
            continue
        if not entry_path.exists():
            fileloc = str(entry_path.resolve())
            bag.files.append(fileloc)
            bag.failures[fileloc] = ImportFailure(
                fileloc, f"no such file or folder: {fileloc}; create it, or give the path of an existing one "
                "(dags_folder is set in nbflow.toml or NBFLOW_DAGS_FOLDER)", "")
            continue
        files, broken = scan_folder(entry_path) if entry_path.is_dir() else ([entry_path], [])
        if entry_path.is_dir():
            bag.folders.extend(dict.fromkeys((os.path.abspath(entry_path), str(entry_path.resolve()))))
        for failure in broken:
            bag.files.append(failure.fileloc)
            bag.failures[failure.fileloc] = failure
        for file in files:
            bag.files.append(str(file.resolve()))
            found.append(file)
    loaded = (load or load_here)(found)
    for file in found:
        fileloc = str(file.resolve())
        dags, failure = loaded[fileloc]
        if failure is not None:
            bag.failures[failure.fileloc] = failure
            continue
        for built in dags:
            other = bag.dags.get(built.dag_id)
            if other is not None and other is not built:
                bag.failures[fileloc] = ImportFailure(
                    fileloc,
                    f"DagDefinitionError: DAG id '{built.dag_id}' is already defined in {other.fileloc}; "
                    "give one of them another dag_id",
                    "",
                )
                continue
            bag.dags[built.dag_id] = built
    return bag


# -- %%dag cells ------------------------------------------------------------------------------------


class _LineParser(argparse.ArgumentParser):
    """argparse that raises instead of printing and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise DagDefinitionError(f"%%dag: {message}\n{self.format_usage().strip()}")

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        raise DagDefinitionError(f"%%dag: {(message or '').strip() or 'bad arguments'}\n{self.format_usage().strip()}")


def dag_line_parser() -> argparse.ArgumentParser:
    """The arguments of a ``%%dag`` line."""
    parser = _LineParser(prog="%%dag", add_help=False,
                         usage="%(prog)s DAG_ID [--schedule CRON] [--timezone TZ] [--start DATE] [--catchup] "
                               "[--tags A,B] [--retries N] [--owner NAME]",
                         description="Define a DAG from the cell: every task made in the cell joins it.")
    parser.add_argument("dag_id", metavar="DAG_ID")
    parser.add_argument("--schedule", metavar="CRON", help="cron, preset (@daily) or none (default: manual runs only)")
    parser.add_argument("--timezone", metavar="TZ", help="IANA zone the schedule is evaluated in")
    parser.add_argument("--start", metavar="DATE", help="first time a run may be scheduled")
    parser.add_argument("--catchup", action="store_true", help="schedule the runs missed since --start")
    parser.add_argument("--tags", metavar="A,B", help="comma-separated tags")
    parser.add_argument("--retries", metavar="N", type=int, help="retries of every task (default_args)")
    parser.add_argument("--owner", metavar="NAME")
    return parser


def parse_dag_line(line: str) -> tuple[str, dict[str, object]]:
    """``'sales --schedule "0 6 * * *" --tags a,b'`` -> ``("sales", {DAG keyword arguments})``.

    Raises :class:`DagDefinitionError` with the usage line when the arguments are wrong.
    """
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise DagDefinitionError(f"%%dag: {exc} in {line!r}\n{dag_line_parser().format_usage().strip()}") from None
    args = dag_line_parser().parse_args(words)
    kwargs: dict[str, object] = {}
    if args.schedule is not None:
        kwargs["schedule"] = None if args.schedule.lower() == "none" else args.schedule
    if args.timezone:
        kwargs["timezone"] = args.timezone
    if args.start:
        kwargs["start_date"] = args.start
    if args.catchup:
        kwargs["catchup"] = True
    if args.tags:
        kwargs["tags"] = [tag.strip() for tag in args.tags.split(",") if tag.strip()]
    if args.retries is not None:
        if args.retries < 0:
            raise DagDefinitionError(f"%%dag: --retries must be 0 or more, not {args.retries}", args.dag_id)
        kwargs["default_args"] = {"retries": args.retries}
    if args.owner:
        kwargs["owner"] = args.owner
    return args.dag_id, kwargs


def compile_cell(source: str, filename: str, first_line: int = 1) -> types.CodeType:
    """Compile cell source so that tracebacks show its lines (kept in ``linecache``)."""
    padded = "\n" * (first_line - 1) + source
    linecache.cache[filename] = (len(padded), None, padded.splitlines(True), filename)
    return compile(padded, filename, "exec")


def exec_dag_cell(line: str, code: types.CodeType, namespace: dict[str, object], *, fileloc: str | None) -> DAG:
    """Run compiled cell ``code`` in ``namespace`` inside ``DAG(<line arguments>)``; return the
    validated DAG. A cycle, a bad argument or an exception in the cell propagates."""
    from nbflow.dag import DAG

    __tracebackhide__ = True  # IPython shows the cell's frames, not these
    dag_id, kwargs = parse_dag_line(line)
    dag = DAG(dag_id, fileloc=fileloc, **kwargs)  # type: ignore[arg-type]
    with dag:  # validates on a clean exit: a cycle raises here
        exec(code, namespace)  # noqa: S102 (running the user's cell is the point)
    return dag


# -- notebooks --------------------------------------------------------------------------------------

_MAGIC_LINE = re.compile(r"^(\s*)[%!]")


def notebook_cells(path: Path) -> list[dict[str, object]]:
    """The cells of a notebook file, each with its source as one string (nbformat 4 JSON)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    cells = data.get("cells") if isinstance(data, dict) else None
    if not isinstance(cells, list):
        raise ValueError("not a Jupyter notebook (nbformat 4): no list of cells")  # noqa: TRY004 (bad file content)
    out = []
    for cell in cells:
        source = cell.get("source", "")
        out.append({**cell, "source": "".join(source) if isinstance(source, list) else str(source)})
    return out


def _without_magics(source: str) -> str:
    """IPython-only lines (``%matplotlib``, ``!pip``) mean nothing headless: make them ``pass``."""
    return "\n".join(_MAGIC_LINE.sub(r"\1pass  # ", line) if _MAGIC_LINE.match(line) else line
                     for line in source.split("\n"))


def load_notebook(file: Path) -> tuple[list[DAG], ImportFailure | None]:
    """Build the DAGs of a notebook from its ``%%dag`` cells and its cells tagged ``nbflow``."""
    fileloc = str(file)
    try:
        cells = notebook_cells(file)
    except (OSError, ValueError) as exc:
        return [], ImportFailure(fileloc, f"{type(exc).__name__}: {file.name} cannot be read as a notebook: {exc}", "")
    name = module_name(file)
    module = types.ModuleType(name)
    module.__file__ = fileloc
    module.__nbflow_dag_file__ = True  # type: ignore[attr-defined]
    sys.modules.setdefault("nbflow_dags", _namespace())
    sys.modules[name] = module
    found: list[DAG] = []
    token = set_dag_collector(found.append)
    try:
        for number, cell in enumerate(cells, start=1):
            source = str(cell["source"])
            if cell.get("cell_type") != "code":
                continue
            tags = (cell.get("metadata") or {}).get("tags") or []  # type: ignore[union-attr]
            first, _, body = source.partition("\n")
            is_dag = first.strip().startswith("%%dag")
            if not is_dag and "nbflow" not in tags:
                continue
            filename = f"{fileloc} [cell {number}]"
            try:
                if is_dag:
                    line = first.strip()[len("%%dag"):]
                    code = compile_cell(_without_magics(body), filename, first_line=2)
                    exec_dag_cell(line, code, vars(module), fileloc=fileloc)
                else:
                    exec(compile_cell(_without_magics(source), filename), vars(module))  # noqa: S102
            except BaseException as exc:  # a cell may raise anything, SystemExit included
                if isinstance(exc, KeyboardInterrupt):
                    raise
                sys.modules.pop(name, None)
                kind = "%%dag cell" if is_dag else "cell tagged nbflow"
                summary = f"{file.name}, cell {number} ({kind}): {_summary(exc)}"
                return [], ImportFailure(fileloc, summary, _traceback_in(exc, filename))
    finally:
        reset_dag_collector(token)
    for built in found:
        built.fileloc = fileloc
    return found, None
