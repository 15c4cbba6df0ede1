"""``HttpSensor``: wait until an HTTP endpoint answers as wanted.

Each poke sends one request through :class:`~nbflow.operators.http.HttpHook` (the connection gives
the base URL, credentials and headers). A status in ``response_error_codes_allowlist`` (404 unless
told) means "not yet", as in Airflow: the resource is not there yet. Any other error status, or a
service that cannot be reached, fails the task, since waiting would not mend it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Sequence

from nbflow.errors import HttpError, InvalidOptionError
from nbflow.operators.http import (
    DEFAULT_CONN_ID,
    HttpHook,
    call_with_context,
    check_callable,
    check_data,
    check_extra_options,
    check_headers,
    check_method,
)
from nbflow.sensors.base import BaseSensor, PokeReturnValue, dag_id_of

NOT_FOUND = 404


class HttpSensor(BaseSensor):
    """Done when ``endpoint`` answers with a success status and ``response_check(response)`` (if
    given) returns true (or a :class:`PokeReturnValue`, whose value becomes the output).

    ``endpoint``, ``request_params`` (the query of a GET, the body of other methods) and ``headers``
    are templated. ``response_error_codes_allowlist``: the statuses that mean "not yet" (default
    ``["404"]``, Airflow's); any other error status fails the task.
    """

    template_fields: ClassVar[Sequence[str]] = ("endpoint", "request_params", "headers")

    def __init__(
        self,
        *,
        endpoint: str,
        http_conn_id: str = DEFAULT_CONN_ID,
        method: str = "GET",
        request_params: dict[str, Any] | None = None,
        headers: dict[str, Any] | None = None,
        response_check: Callable[..., Any] | None = None,
        extra_options: dict[str, Any] | None = None,
        response_error_codes_allowlist: Iterable[int | str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        dag_id, task_id = self.dag_id, self.task_id
        if not isinstance(endpoint, str):
            raise InvalidOptionError("endpoint", endpoint, "give the path after the connection's URL as text, e.g. 'api/ready'",
                                     dag_id, task_id)
        if not isinstance(http_conn_id, str) or not http_conn_id:
            raise InvalidOptionError("http_conn_id", http_conn_id, "give a connection id, e.g. 'http_default'", dag_id, task_id)
        self.endpoint = endpoint
        self.http_conn_id = http_conn_id
        self.method = check_method(method, dag_id, task_id)
        self.request_params = check_data(request_params, dag_id, task_id, "request_params")
        self.headers = check_headers(headers, dag_id, task_id)
        self.response_check = check_callable("response_check", response_check, dag_id, task_id)
        options = check_extra_options(extra_options, dag_id, task_id)
        if "check_response" in options:
            raise InvalidOptionError("extra_options['check_response']", options["check_response"],
                                     "a sensor decides by response_error_codes_allowlist and response_check; leave it out",
                                     dag_id, task_id)
        self.extra_options = options
        self.response_error_codes_allowlist = _status_codes(
            [NOT_FOUND] if response_error_codes_allowlist is None else response_error_codes_allowlist, dag_id, task_id)

    def waiting_for(self) -> str:
        return f"{self.method} {self.endpoint} on connection '{self.http_conn_id}'"

    def poke(self, context: dict[str, Any]) -> bool | PokeReturnValue:
        hook = HttpHook(self.method, self.http_conn_id, dag_id=dag_id_of(self, context), task_id=self.task_id)
        response = hook.run(self.endpoint, self.request_params, self.headers, {**self.extra_options, "check_response": False})
        if not response.ok:
            if response.status_code in self.response_error_codes_allowlist:
                self._log(f"{response.url} answered {response.status_code}: not yet")
                return False
            print(f"{self.method} {response.url} answered {response.status_code} {response.reason}; the body starts: "
                  f"{response.text[:500]!r}", flush=True)
            raise HttpError(hook.dag_id, self.task_id, self.method, response.url,
                            f"answered {response.status_code} {response.reason}".rstrip(),
                            "A sensor waits only through the statuses in response_error_codes_allowlist "
                            f"({sorted(self.response_error_codes_allowlist)}); add this one there to wait through it",
                            status=response.status_code)
        if self.response_check is None:
            return True
        result = call_with_context(self.response_check, response, context)
        return result if isinstance(result, PokeReturnValue) else bool(result)


def _status_codes(codes: Any, dag_id: str | None, task_id: str | None) -> frozenset[int]:
    """Statuses as numbers: Airflow lists them as text (``["404"]``); both are read."""
    allowed = "give a list of HTTP status codes from 400 to 599, e.g. ['404', '503']"
    if isinstance(codes, (str, int)) or not isinstance(codes, Iterable):
        raise InvalidOptionError("response_error_codes_allowlist", codes, allowed, dag_id, task_id)
    codes = list(codes)
    found = set()
    for code in codes:
        try:
            number = int(code) if not isinstance(code, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or not 400 <= number <= 599:
            raise InvalidOptionError("response_error_codes_allowlist", codes, allowed, dag_id, task_id)
        found.add(number)
    return frozenset(found)
