"""``FileSensor``: wait for a file (or files matching a glob pattern) to appear."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from typing import Any, ClassVar

from nbflow.sensors.base import BaseSensor


class FileSensor(BaseSensor):
    """Done when ``filepath`` names an existing file or a non-empty directory.

    ``filepath`` is templated (``"data/{{ ds }}/*.csv"``) and may be a glob pattern; any match
    counts. A directory counts only once something is in it, since an empty folder usually means
    the producer has started but not finished. ``recursive=True`` lets ``**`` match any depth of
    folders. Relative paths are taken from the working directory of the process that pokes.
    """

    template_fields: ClassVar[Sequence[str]] = ("filepath",)

    def __init__(self, *, filepath: str | os.PathLike[str], recursive: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filepath = filepath
        self.recursive = bool(recursive)

    def waiting_for(self) -> str:
        return f"file {os.fspath(self.filepath)}"

    def poke(self, context: dict[str, Any]) -> bool:
        pattern = os.path.expanduser(os.fspath(self.filepath))
        for path in glob.iglob(pattern, recursive=self.recursive):
            if os.path.isfile(path) or _non_empty_dir(path):
                return True
        return False


def _non_empty_dir(path: str) -> bool:
    try:
        with os.scandir(path) as entries:
            return any(True for _ in entries)
    except (NotADirectoryError, FileNotFoundError, PermissionError):
        return False
