"""The files the REST API hands out, and the rule that keeps it from handing out anything else.

Paths come from the store (a task's log, its output artifact, the notebook it wrote) or from a
client (a notebook to schedule, relative to the server's ``root_dir``). Either kind is resolved,
symlinks included, and served only when it lands inside the folders nbflow owns: ``NBFLOW_HOME``
and the ``logs_folder`` and ``artifacts_folder`` settings (which default to folders inside it), or
for client paths the server's root directory. Whatever is stored in the database, ``../`` and a
symlink cannot turn the API into a reader of ``/etc/passwd``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from nbflow.errors import NotFoundError, PathNotAllowedError

if TYPE_CHECKING:
    from nbflow.settings import Settings

#: at most this many bytes of a log in one answer; a client reads on from the offset it is given
LOG_CHUNK = 1024 * 1024


def nbflow_roots(settings: Settings) -> list[Path]:
    """The folders whose files the API may serve: ``NBFLOW_HOME``, and the logs and artifacts
    folders when the settings put them elsewhere."""
    roots: list[Path] = []
    for folder in (settings.home, settings.logs_folder, settings.artifacts_folder):
        resolved = Path(folder).expanduser().resolve()
        if not any(resolved.is_relative_to(root) for root in roots):
            roots = [root for root in roots if not root.is_relative_to(resolved)] + [resolved]
    return roots


def inside(path: str | os.PathLike[str], roots: list[Path], what: str = "file") -> Path:
    """``path`` resolved, if it lies inside one of ``roots``; else :class:`PathNotAllowedError`."""
    text = os.fspath(path)
    if "\x00" in text:
        raise PathNotAllowedError(text.replace("\x00", "\\0"), [str(r) for r in roots], what)
    resolved = Path(text).expanduser().resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        raise PathNotAllowedError(text, [str(r) for r in roots], what)
    return resolved


def in_root_dir(root_dir: str | os.PathLike[str], relative: str, what: str = "notebook") -> Path:
    """A client's path, relative to the server's root directory, resolved and checked to stay in it
    and to exist (:class:`NotFoundError` when it does not)."""
    root = Path(root_dir).expanduser().resolve()
    if not relative or not relative.strip():
        raise NotFoundError(f"no {what} path given; pass ?path=<{what} relative to the server's root directory>")
    candidate = inside(root / relative.lstrip("/"), [root], what)
    if not candidate.is_file():
        raise NotFoundError(f"there is no {what} {relative} under the server's root directory {root}")
    return candidate


def relative_to_root(path: str | os.PathLike[str] | None, root_dir: str | os.PathLike[str]) -> str | None:
    """``path`` relative to the server's root directory (what JupyterLab opens), or None outside it."""
    if not path:
        return None
    resolved, root = Path(path).resolve(), Path(root_dir).expanduser().resolve()
    return resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else None


def _decodable_end(data: bytes) -> int:
    """Where to cut ``data`` so that no UTF-8 character is split: the rest comes with the next read."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # a lead byte (or ASCII): is its sequence complete?
            need = 1 if byte < 0x80 else 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 else 4
            return len(data) if need <= back else len(data) - back
    return len(data)


def read_from(path: Path, offset: int, limit: int = LOG_CHUNK) -> tuple[str, int, bool]:
    """(text from byte ``offset``, the offset after it, whether the end of the file was reached).

    An offset past the end (the client is ahead of a file that was replaced) reads nothing and
    returns the file's size, so that the next poll starts from a real position.
    """
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if offset >= size:
            return "", size, True
        handle.seek(offset)
        data = handle.read(limit)
    at_end = offset + len(data) >= size
    cut = len(data) if at_end else _decodable_end(data)
    if cut == 0:  # a single character longer than the limit: give it whole rather than stall
        cut = len(data)
    return data[:cut].decode("utf-8", errors="replace"), offset + cut, at_end and cut == len(data)

