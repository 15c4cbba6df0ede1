"""``NbflowApp``: nbflow as a Jupyter server extension.

It adds the REST API under ``{base_url}nbflow/api/`` (the JupyterLab extension's back end) and, with
``run_scheduler``, a scheduler host inside the server, so that a JupyterLab left running keeps the
DAGs on their schedules without a separate ``nbflow scheduler`` daemon. Its traitlets are the only
configuration it reads from Jupyter; everything else comes from nbflow's own settings.
"""

from __future__ import annotations

import asyncio
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Float, Int, Unicode, default

from nbflow.errors import ConfigError
from nbflow.jupyter.server.routes import handlers
from nbflow.jupyter.server.services import Services


class NbflowApp(ExtensionApp):
    """The nbflow server extension (enabled on install by ``jupyter_server_config.d/nbflow.json``)."""

    name = "nbflow"
    description = "nbflow's REST API for JupyterLab, and optionally a scheduler host in the server"
    load_other_extensions = True

    run_scheduler = Bool(
        config=True,
        help="Run nbflow's scheduler in this server (a host of kind 'jupyter-server'). Defaults to the "
        "nbflow setting server_scheduler (nbflow.toml, or NBFLOW_SERVER_SCHEDULER=1). Safe next to an "
        "'nbflow scheduler' daemon on the same store: no task instance runs twice.",
    )
    scheduler_executor = Unicode(
        "", config=True,
        help="Executor of the scheduler in the server and of runs started by the API (inline, thread, process "
        "or dask); empty means nbflow's executor setting.",
    )
    shutdown_grace = Float(
        10.0, config=True,
        help="Seconds that tasks running in the server get to finish when it shuts down; what is left "
        "is retried by the next scheduler host.",
    )
    api_threads = Int(4, config=True, help="Worker threads for the API's blocking work (database, files).")

    #: nbflow's settings could not be read: every API request answers with this error (the same one
    #: line the command line prints), and the server and its other extensions keep working
    settings_error: ConfigError | None = None

    @default("run_scheduler")
    def _run_scheduler_default(self) -> bool:
        from nbflow.settings import get_settings

        try:
            return bool(get_settings().server_scheduler)
        except ConfigError:  # reported once, by initialize_settings
            return False

    def initialize_settings(self) -> None:
        from nbflow.settings import get_settings

        assert self.serverapp is not None
        try:
            settings = get_settings()
        except ConfigError as exc:
            self.settings_error = exc
            self.log.error("nbflow: %s", exc)
            return
        self.services = Services(settings, root_dir=self.serverapp.root_dir, threads=self.api_threads,
                                 executor=self.scheduler_executor or None, grace=self.shutdown_grace)
        from nbflow.jupyter.server.renames import follow_renames

        follow_renames(self.serverapp, self.services)  # DAGs of notebooks follow them when renamed

    def initialize_handlers(self) -> None:
        self.handlers.extend(handlers())

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        """Called by the server once its event loop runs: start the scheduler host if asked to."""
        if self.run_scheduler and self.settings_error is None:
            self.services.host.start()
            self.log.info("nbflow: scheduler host %s runs in this server", self.services.host.host_id)

    async def stop_extension(self) -> None:
        """At server shutdown: stop the scheduler host and any run the server drives, letting running
        tasks finish within ``shutdown_grace``, off the event loop."""
        services = getattr(self, "services", None)
        if services is not None:
            await asyncio.get_running_loop().run_in_executor(None, services.close)
