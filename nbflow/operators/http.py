"""``HttpOperator`` (also ``SimpleHttpOperator``): one HTTP request as a task, and ``HttpHook``, the
request itself, for a ``@task`` or a sensor that needs it.

Where the request goes and with which credentials comes from a connection (``http_conn_id``), as in
Airflow's HttpHook: the base URL is ``<schema or http>://host:port`` (a host that already holds a
scheme is used as it is), the connection's login and password become basic auth, and its extra
becomes default headers. DAG code names only the endpoint, so that the same DAG reaches a test
service or the real one by the connection alone.

Only the standard library is used (:mod:`urllib.request`): a request needs nothing more, and the
response a callback sees (:class:`HttpResponse`) speaks the ``requests`` names Airflow users know
(``status_code``, ``text``, ``json()``, ``headers``).
"""

from __future__ import annotations

import base64
import inspect
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence
from urllib.parse import urlencode, urlsplit, urlunsplit

from nbflow.errors import HttpError, InvalidConnectionError, InvalidOptionError
from nbflow.operators.base import BaseOperator, context_arguments
from nbflow.refs import OutputRef

#: the methods a request may use
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
#: what ``extra_options`` may hold, and what each must be
EXTRA_OPTIONS = {
    "timeout": "seconds, a number more than 0",
    "verify": "True, False or the path of a CA bundle (https only)",
    "check_response": "True or False (False: an error status does not fail the request)",
    "allow_redirects": "True or False",
}
#: how much of an error answer's body goes to the log
BODY_SHOWN = 500
DEFAULT_CONN_ID = "http_default"


@dataclass
class HttpResponse:
    """What a request got back: the status, the headers and the body."""

    status_code: int
    reason: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes = b""

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    @property
    def encoding(self) -> str:
        content_type = {k.lower(): v for k, v in self.headers.items()}.get("content-type", "")
        for part in content_type.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                return value.strip('"')
        return "utf-8"

    @property
    def text(self) -> str:
        try:
            return self.content.decode(self.encoding, errors="replace")
        except LookupError:  # a charset Python does not know
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.text)


def check_extra_options(extra_options: Any, dag_id: str | None, task_id: str | None) -> dict[str, Any]:
    """``extra_options`` checked when the DAG is built: unknown keys and wrong types are refused."""
    if extra_options is None:
        return {}
    if not isinstance(extra_options, Mapping):
        raise InvalidOptionError("extra_options", extra_options, "give a dict with some of: " + ", ".join(EXTRA_OPTIONS),
                                 dag_id, task_id)
    for key, value in extra_options.items():
        if key not in EXTRA_OPTIONS:
            raise InvalidOptionError(f"extra_options[{key!r}]", value,
                                     "the keys understood are " + ", ".join(EXTRA_OPTIONS), dag_id, task_id)
        good = {
            "timeout": value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
                                         and value != float("inf")),
            "verify": isinstance(value, (bool, str)),
            "check_response": isinstance(value, bool),
            "allow_redirects": isinstance(value, bool),
        }[key]
        if not good:
            raise InvalidOptionError(f"extra_options[{key!r}]", value, f"give {EXTRA_OPTIONS[key]}", dag_id, task_id)
    return dict(extra_options)


def check_method(method: Any, dag_id: str | None, task_id: str | None) -> str:
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise InvalidOptionError("method", method, "use one of " + ", ".join(METHODS), dag_id, task_id)
    return method.upper()


def check_callable(name: str, value: Any, dag_id: str | None, task_id: str | None) -> Any:
    if value is not None and not callable(value):
        raise InvalidOptionError(name, value, "give a function of the response, or leave it out", dag_id, task_id)
    return value


def check_headers(headers: Any, dag_id: str | None, task_id: str | None) -> dict[str, Any]:
    if headers is None:
        return {}
    if isinstance(headers, OutputRef):
        return headers  # type: ignore[return-value]  # an upstream output, checked when it arrives
    if not isinstance(headers, Mapping):
        raise InvalidOptionError("headers", headers, 'give a dict of header names to text, e.g. {"Accept": "application/json"}',
                                 dag_id, task_id)
    return dict(headers)


def check_data(data: Any, dag_id: str | None, task_id: str | None, name: str = "data") -> Any:
    if data is None or isinstance(data, (str, bytes, Mapping, list, OutputRef)):
        return data
    raise InvalidOptionError(name, data, "give a dict or list (sent as JSON, or as a form per the Content-Type "
                             "header), text or bytes (sent as they are)", dag_id, task_id)


def shown_url(url: str) -> str:
    """``url`` for a log line or an error: any credentials in it removed."""
    try:
        parts = urlsplit(url)
        if parts.username is not None or parts.password is not None:
            host = parts.hostname or ""
            netloc = f"{host}:{parts.port}" if parts.port else host
            return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return url.rsplit("@", 1)[-1]
    return url


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class HttpHook:
    """Requests to the service of connection ``http_conn_id`` (Airflow's ``HttpHook``).

    ``HttpHook(method="GET", http_conn_id="my_api").run("items", data={"page": 2})`` from a ``@task``
    sends ``GET <base URL>/items?page=2`` with the connection's credentials and headers. An error
    status raises :class:`~nbflow.errors.HttpError` unless ``extra_options={"check_response": False}``.
    """

    def __init__(self, method: str = "POST", http_conn_id: str = DEFAULT_CONN_ID, *,
                 dag_id: str | None = None, task_id: str | None = None) -> None:
        self.method = check_method(method, dag_id, task_id)
        self.http_conn_id = http_conn_id
        self.dag_id, self.task_id = dag_id, task_id
        self.base_url = ""
        self._headers: dict[str, str] = {}
        self._auth: str | None = None
        self.conn_options: dict[str, Any] = {}

    def get_conn(self, headers: Mapping[str, Any] | None = None) -> None:
        """Read the connection: base URL, basic auth and default headers (the connection's extra)."""
        from nbflow.connection import Connection

        conn = Connection.get(self.http_conn_id)
        if conn.host and "://" in conn.host:
            base = conn.host
        else:
            # Airflow reads the scheme from the schema field; a connection of type https means https too
            scheme = conn.schema or ("https" if conn.conn_type == "https" else "http")
            base = f"{scheme}://{conn.host or ''}"
        if conn.port:
            base += f":{conn.port}"
        self.base_url = base
        if conn.login:
            token = base64.b64encode(f"{conn.login}:{conn.password or ''}".encode()).decode("ascii")
            self._auth = f"Basic {token}"
        extra = dict(conn.extra_dejson)
        # request options in the extra are defaults of extra_options (as in Airflow's http provider),
        # not headers
        # a URI's query carries only text: "10" and "false" are read as what they say
        options = {key: _from_text(key, extra.pop(key)) for key in list(extra) if key in EXTRA_OPTIONS}
        for key, value in options.items():
            try:
                check_extra_options({key: value}, self.dag_id, self.task_id)
            except InvalidOptionError:
                raise InvalidConnectionError(self.http_conn_id, f"its extra has {key}={value!r}",
                                             f"Give {EXTRA_OPTIONS[key]}") from None
        self.conn_options = options
        nested = extra.pop("headers", None)
        merged: dict[str, Any] = {**extra, **(nested if isinstance(nested, Mapping) else {})}
        merged.update(headers or {})
        self._headers = {str(k): _header_value(v) for k, v in merged.items()}

    def url_from_endpoint(self, endpoint: str | None) -> str:
        """The base URL and the endpoint, joined by exactly one slash, as Airflow joins them."""
        endpoint = endpoint or ""
        if self.base_url and not self.base_url.endswith("/") and endpoint and not endpoint.startswith("/"):
            return f"{self.base_url}/{endpoint}"
        return self.base_url + endpoint

    def run(self, endpoint: str | None = None, data: Any = None, headers: Mapping[str, Any] | None = None,
            extra_options: Mapping[str, Any] | None = None) -> HttpResponse:
        """Send the request and return its response; an error status raises :class:`HttpError`
        (unless ``check_response`` is False), as does a service that cannot be reached."""
        self.get_conn(check_headers(headers, self.dag_id, self.task_id))
        options = {**self.conn_options, **check_extra_options(extra_options, self.dag_id, self.task_id)}
        url = self.url_from_endpoint(endpoint)
        body, url = self._body(check_data(data, self.dag_id, self.task_id), url)
        request = urllib.request.Request(url, data=body, method=self.method, headers=self._headers)
        if self._auth is not None:
            request.add_header("Authorization", self._auth)
        handlers: list[Any] = []
        if url.startswith("https:"):
            handlers.append(urllib.request.HTTPSHandler(context=_ssl_context(options.get("verify", True))))
        if options.get("allow_redirects") is False:
            handlers.append(_NoRedirect())
        opener = urllib.request.build_opener(*handlers)
        try:
            with opener.open(request, timeout=options.get("timeout")) as answer:
                response = HttpResponse(answer.status, answer.reason or "", shown_url(answer.url),
                                        dict(answer.headers.items()), answer.read())
        except urllib.error.HTTPError as exc:
            with exc:
                response = HttpResponse(exc.code, str(exc.reason or ""), shown_url(url),
                                        dict(exc.headers.items()) if exc.headers else {}, exc.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise HttpError(self.dag_id, self.task_id, self.method, shown_url(url),
                            f"could not be sent ({reason})",
                            "Check the connection's host and port, and that the service is up") from None
        if not response.ok and options.get("check_response", True):
            print(f"{self.method} {response.url} answered {response.status_code} {response.reason}; the body starts: "
                  f"{response.text[:BODY_SHOWN]!r}", flush=True)
            raise HttpError(self.dag_id, self.task_id, self.method, response.url,
                            f"answered {response.status_code} {response.reason}".rstrip(),
                            "The task log has the start of the response body", status=response.status_code)
        return response

    def _body(self, data: Any, url: str) -> tuple[bytes | None, str]:
        """(the body, the URL): GET and HEAD send a dict as the query; others send it as JSON, or as a
        form when the Content-Type header says so."""
        if data is None:
            return None, url
        if self.method in ("GET", "HEAD"):
            if isinstance(data, Mapping):
                return None, url + ("&" if "?" in url else "?") + urlencode(data, doseq=True)
            if isinstance(data, str) and data:
                return None, url + ("&" if "?" in url else "?") + data.lstrip("?")
            return None, url
        if isinstance(data, bytes):
            return data, url
        if isinstance(data, str):
            return data.encode("utf-8"), url
        content_type = next((v for k, v in self._headers.items() if k.lower() == "content-type"), None)
        if content_type is not None and "x-www-form-urlencoded" in content_type and isinstance(data, Mapping):
            return urlencode(data, doseq=True).encode("ascii"), url
        if content_type is None:
            self._headers["Content-Type"] = "application/json"
        return json.dumps(data).encode("utf-8"), url


def _from_text(key: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if key == "timeout":
        try:
            return float(value)
        except ValueError:
            return value
    return {"true": True, "false": False}.get(value.lower(), value) if key != "verify" or value.lower() in (
        "true", "false") else value


def _header_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _ssl_context(verify: bool | str) -> ssl.SSLContext:
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)


class HttpOperator(BaseOperator):
    """Sends one request to the service of ``http_conn_id`` and outputs the response's text.

    ``endpoint``, ``data`` and ``headers`` are templated. ``data`` as a dict is the query of a GET,
    and the JSON body of other methods (a form body when ``headers`` say
    ``application/x-www-form-urlencoded``); text or bytes are sent as they are. An error status
    fails the task, naming the method, the URL and the status (the log has the start of the body).
    ``response_check(response)`` returning False fails it too; ``response_filter(response)`` makes
    the task's output (default: the response text). Both may also ask for context values by name.
    ``extra_options``: ``timeout`` (seconds), ``verify`` (https), ``check_response``,
    ``allow_redirects``. ``log_response=True`` writes the response text to the task log.
    """

    template_fields: ClassVar[Sequence[str]] = ("endpoint", "data", "headers")
    kind: ClassVar[str] = "http"

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        method: str = "POST",
        data: Any = None,
        headers: dict[str, str] | None = None,
        response_check: Callable[..., Any] | None = None,
        response_filter: Callable[..., Any] | None = None,
        extra_options: dict[str, Any] | None = None,
        http_conn_id: str = DEFAULT_CONN_ID,
        log_response: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        dag_id, task_id = self.dag_id, self.task_id
        if endpoint is not None and not isinstance(endpoint, (str, OutputRef)):
            raise InvalidOptionError("endpoint", endpoint, "give the path after the connection's URL as text, e.g. 'api/items'",
                                     dag_id, task_id)
        if not isinstance(http_conn_id, str) or not http_conn_id:
            raise InvalidOptionError("http_conn_id", http_conn_id, "give a connection id, e.g. 'http_default'", dag_id, task_id)
        if not isinstance(log_response, bool):
            raise InvalidOptionError("log_response", log_response, "give True or False", dag_id, task_id)
        self.method = check_method(method, dag_id, task_id)
        self.endpoint = endpoint
        self.data = check_data(data, dag_id, task_id)
        self.headers = check_headers(headers, dag_id, task_id)
        self.response_check = check_callable("response_check", response_check, dag_id, task_id)
        self.response_filter = check_callable("response_filter", response_filter, dag_id, task_id)
        self.extra_options = check_extra_options(extra_options, dag_id, task_id)
        self.http_conn_id = http_conn_id
        self.log_response = log_response

    def hook(self, context: dict[str, Any]) -> HttpHook:
        return HttpHook(self.method, self.http_conn_id, dag_id=running_dag_id(self, context), task_id=self.task_id)

    def execute(self, context: dict[str, Any]) -> Any:
        hook = self.hook(context)
        options = dict(self.extra_options)
        if "timeout" not in options and self.execution_timeout_seconds:
            options["timeout"] = self.execution_timeout_seconds
        response = hook.run(self.endpoint, self.data, self.headers, options)
        print(f"{self.method} {response.url}: {response.status_code} {response.reason}".rstrip(), flush=True)
        if self.log_response:
            print(response.text, flush=True)
        if self.response_check is not None and not call_with_context(self.response_check, response, context):
            raise HttpError(hook.dag_id, self.task_id, self.method, response.url,
                            f"answered {response.status_code} but its response_check returned False",
                            "Check what the service answered (log_response=True writes it to the log)",
                            status=response.status_code)
        if self.response_filter is not None:
            return call_with_context(self.response_filter, response, context)
        return response.text


#: Airflow's older name for the same operator
SimpleHttpOperator = HttpOperator


def call_with_context(fn: Callable[..., Any], response: HttpResponse, context: dict[str, Any]) -> Any:
    """``fn(response, **the context values it asks for)``, as Airflow calls these callbacks (its first
    parameter is the response, whatever its name)."""
    try:
        first = next(iter(inspect.signature(fn).parameters), None)
    except (TypeError, ValueError):
        first = None
    return fn(response, **context_arguments(fn, context, {first} if first else set()))


def running_dag_id(task: BaseOperator, context: dict[str, Any]) -> str | None:
    """The running task's DAG id, for messages: a task runs as a copy that travels without its DAG."""
    return getattr(context.get("dag"), "dag_id", None) or getattr(context.get("ti"), "dag_id", None) or task.dag_id
