"""DAGs follow their notebooks when a person renames or moves them in Jupyter.

A ``%%dag`` cell records its notebook's path, and the server later loads the DAG from there (the
sidebar's ▶, clear, mark). A kernel learns its notebook's path once, when it starts, so after a
rename in Lab that path is stale. The server is told of every rename by its contents manager (the
``contents_service`` event); on each, the DAGs defined in the old file, or in files under the old
folder, are moved to the new path in the store. Runs, logs and the paused flag stay with the DAG.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbflow.jupyter.server.services import Services

log = logging.getLogger(__name__)

#: the jupyter_server event its contents manager emits on save, rename, copy and delete
CONTENTS_EVENTS = "https://events.jupyter.org/jupyter_server/contents_service/v1"


def moved_paths(root_dir: str, data: dict[str, Any]) -> tuple[str, str] | None:
    """(old, new) absolute paths of a rename event, or None for any other contents action."""
    if data.get("action") != "rename" or not data.get("source_path") or not data.get("path"):
        return None
    root = os.path.realpath(root_dir)
    return (os.path.join(root, str(data["source_path"]).strip("/")),
            os.path.join(root, str(data["path"]).strip("/")))


def follow_renames(serverapp: Any, services: Services) -> bool:
    """Listen to the server's contents events; False when this server has no event logger."""
    logger = getattr(serverapp, "event_logger", None)
    if logger is None:
        return False

    async def listener(logger: Any, schema_id: str, data: dict[str, Any]) -> None:  # called by keyword
        paths = moved_paths(services.root_dir, data)
        if paths is None:
            return
        try:
            moved = await services.call(services.store.move_fileloc, *paths)
        except Exception:  # a rename must never fail because of nbflow; the next %%dag run fixes the path
            log.exception("nbflow: could not move the DAGs of %s to %s", *paths)
            return
        if moved:
            log.info("nbflow: %s moved to %s with its DAGs %s", paths[0], paths[1], ", ".join(moved))

    logger.add_listener(schema_id=CONTENTS_EVENTS, listener=listener)
    return True
