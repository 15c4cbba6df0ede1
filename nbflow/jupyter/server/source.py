"""``dags/<id>/source``: where a DAG is written, so that every DAG view can show it.

The answer names the file, the line (and for a notebook the cell) that define the DAG, the source
text to show read-only, and ``lab_path``, the file relative to the server's root when Lab can open
it there (None outside the root). Only files inside the server's root, ``NBFLOW_HOME`` and
``dags_folder`` are read: the path comes from the store, and the store must not turn the API into a
reader of any file on the machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from nbflow.jupyter.server import files
from nbflow.jupyter.server.base import NbflowHandler
from nbflow.jupyter.server.dags import find_row

if TYPE_CHECKING:
    from nbflow.jupyter.server.services import Services


def dag_source(services: Services, dag_id: str) -> dict[str, Any]:
    from nbflow.jupyter.dagsource import locate

    row = find_row(services, dag_id)
    fileloc = row.get("fileloc") or ""
    if fileloc and not Path(fileloc).is_absolute():  # a notebook's path as its kernel named it
        fileloc = str(Path(services.root_dir) / fileloc)
    if fileloc.endswith((".py", ".ipynb")):
        roots = [*services.roots, Path(services.root_dir), Path(services.settings.dags_folder).expanduser().resolve()]
        fileloc = str(files.inside(fileloc, roots, "DAG source file"))
    found = locate(fileloc, dag_id).to_json()
    found["lab_path"] = files.relative_to_root(found["path"], services.root_dir)
    return found


class DagSourceHandler(NbflowHandler):
    @web.authenticated
    @authorized
    async def get(self, dag_id: str) -> None:
        self.reply(await self.services.call(dag_source, self.services, dag_id))
