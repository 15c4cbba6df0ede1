"""The base of every nbflow REST handler: Jupyter's identity and authorizer, JSON in and out, and
the one table that maps nbflow's errors to HTTP status codes.

A handler method raises whatever nbflow raises; :meth:`NbflowHandler.write_error` turns it into
``{"error": <class name>, "message": <what to do>, ...its fields}`` with the status of
:data:`STATUS`. An error that is not nbflow's is a bug: it answers 500 and is logged with its
traceback.
"""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado.web import HTTPError

from nbflow.errors import (
    ConfigError,
    DagDefinitionError,
    DagFileConflictError,
    DagImportError,
    InvalidRequestError,
    NbflowError,
    NotFoundError,
    PathNotAllowedError,
    StoreError,
    TemplateError,
)

if TYPE_CHECKING:
    from nbflow.jupyter.server.services import Services

#: nbflow error -> HTTP status; the first class the error is an instance of wins
STATUS: list[tuple[type[NbflowError], int]] = [
    (NotFoundError, 404),
    (PathNotAllowedError, 403),
    (DagFileConflictError, 409),
    (DagImportError, 409),
    (DagDefinitionError, 400),
    (InvalidRequestError, 400),
    (TemplateError, 400),
    (StoreError, 503),
    (ConfigError, 500),
]
#: the API's resource name for Jupyter's authorizer
AUTH_RESOURCE = "nbflow"


def status_of(error: BaseException) -> int:
    for cls, status in STATUS:
        if isinstance(error, cls):
            return status
    return 500


def error_body(error: BaseException) -> dict[str, Any]:
    """The JSON of an nbflow error: its class, its message and its plain fields (``field`` of a bad
    cron, ``dag_id``, ...), so that a client can point at what to fix."""
    body: dict[str, Any] = {"error": type(error).__name__, "message": str(error)}
    for key, value in vars(error).items():
        if key.startswith("_") or key in body:
            continue
        if value is None or isinstance(value, (str, int, float, bool)) or (
                isinstance(value, list) and all(isinstance(v, str) for v in value)):
            body[key] = value
    return body


class NbflowHandler(ExtensionHandlerMixin, APIHandler):
    """JSON handlers of ``/nbflow/api/``; subclasses decorate each method with
    ``@web.authenticated`` and ``@authorized``."""

    auth_resource = AUTH_RESOURCE

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        from nbflow.cronlocale import from_accept_language
        from nbflow.jupyter.server.serialize import READER_LANGUAGE

        # schedules in words in the browser's language, not the server's
        READER_LANGUAGE.set(from_accept_language(self.request.headers.get("Accept-Language")))

    @property
    def services(self) -> Services:
        error = getattr(self.extensionapp, "settings_error", None)
        if error is not None:  # a copy: raising one instance again and again would pile up tracebacks
            raise copy.copy(error)
        return self.extensionapp.services  # type: ignore[attr-defined, no-any-return]

    # -- input ------------------------------------------------------------------------------------

    def json_body(self) -> dict[str, Any]:
        """The request body as a JSON object (an empty body is ``{}``)."""
        raw = self.request.body or b""
        if not raw.strip():
            return {}
        try:
            value = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidRequestError(f"the request body is not valid JSON ({exc}); send a JSON object") from None
        if not isinstance(value, dict):
            raise InvalidRequestError(f"the request body must be a JSON object, not {type(value).__name__}")
        return value

    def int_argument(self, name: str, default: int, *, low: int = 0, high: int = 10_000) -> int:
        text = self.get_argument(name, None)
        if text is None or text == "":
            return default
        try:
            value = int(text)
        except ValueError:
            raise InvalidRequestError(f"?{name}={text!r} is not a whole number") from None
        if not low <= value <= high:
            raise InvalidRequestError(f"?{name}={value} is out of range: give a number from {low} to {high}")
        return value

    def _map_index(self) -> int:
        """``?map_index=N``: one instance of a mapped task (-1, the default, is the task itself)."""
        return self.int_argument("map_index", -1, low=-1, high=10_000_000)

    # -- output -----------------------------------------------------------------------------------

    def reply(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(value, default=str))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every error answer of the API: JSON, with the status of :data:`STATUS` for nbflow errors."""
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, NbflowError):
            status, body = status_of(error), error_body(error)
        elif isinstance(error, HTTPError):
            status = error.status_code
            body = {"error": "Forbidden" if status == 403 else type(error).__name__,
                    "message": error.log_message or self._reason}
        elif error is not None:
            status, body = 500, {"error": "InternalError",
                                 "message": f"{type(error).__name__}: {error} (a bug in nbflow; the server log has the traceback)"}
        else:
            status, body = status_code, {"error": "HTTPError", "message": self._reason}
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body, default=str))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """nbflow errors are answers, not crashes: one line in the log, no traceback."""
        if isinstance(value, (ConfigError, StoreError)):  # the setup, not a bug: the message says what to fix
            self.log.warning("nbflow API %s %s: %s: %s", self.request.method, self.request.path,
                             type(value).__name__, value)
            return
        if isinstance(value, NbflowError) and status_of(value) < 500:
            self.log.info("nbflow API %s %s: %s: %s", self.request.method, self.request.path,
                          type(value).__name__, value)
            return
        super().log_exception(typ, value, tb)
