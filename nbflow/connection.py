"""``Connection``: where a task connects and with which credentials, looked up by id at run time.

As in Airflow, a DAG names ``Connection.get("my_db")`` instead of holding a host and a password; the
environment variable ``NBFLOW_CONN_MY_DB`` (a URI) defines it without the store and takes precedence,
otherwise the store has it (``nbflow connections add``), its secrets encrypted. URIs are read and
written with :mod:`urllib.parse`: ``type://login:password@host:port/schema?key=value``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from nbflow.credentials import check_conn_id, check_port, conn_env_name, env_connection_uri, parse_extra
from nbflow.errors import ConnectionNotFoundError, InvalidConnectionError

#: a query key whose value is the whole extra as JSON, for extras that are not flat text (Airflow's)
EXTRA_KEY = "__extra__"


class Connection:
    """One connection's fields. ``extra`` is a JSON object (``extra_dejson`` is it as a dict)."""

    def __init__(
        self, conn_id: str, conn_type: str, *, host: str | None = None, schema: str | None = None,
        login: str | None = None, password: str | None = None, port: int | str | None = None,
        extra: dict[str, Any] | str | None = None, description: str | None = None,
    ) -> None:
        self.conn_id = check_conn_id(conn_id)
        if not isinstance(conn_type, str) or not conn_type.strip():
            raise InvalidConnectionError(conn_id, "it has no type", "Give its type (e.g. postgres, http) or a URI")
        self.conn_type = conn_type
        self.host, self.schema, self.login, self.password = host or None, schema or None, login or None, password or None
        self.port = check_port(conn_id, port)
        self.extra_dejson = parse_extra(conn_id, extra)
        self.description = description

    @property
    def extra(self) -> str:
        """The extra as JSON text, as Airflow's ``Connection.extra`` is."""
        return json.dumps(self.extra_dejson) if self.extra_dejson else ""

    def __repr__(self) -> str:
        # never the password: a repr ends up in logs and tracebacks
        return f"Connection({self.conn_id!r}, {self.conn_type!r}, host={self.host!r}, login={self.login!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Connection) and self.fields() == other.fields()

    __hash__ = None  # type: ignore[assignment]

    def fields(self) -> dict[str, Any]:
        """Everything but the id, as the store's ``set_connection`` takes it."""
        return {"conn_type": self.conn_type, "host": self.host, "schema": self.schema, "login": self.login,
                "password": self.password, "port": self.port, "extra": self.extra_dejson,
                "description": self.description}

    # -- URIs ---------------------------------------------------------------------------------

    @classmethod
    def from_uri(cls, conn_id: str, uri: str, description: str | None = None) -> Connection:
        """The connection a URI describes: the scheme is its type (``-`` read as ``_``), the path its
        schema, the query its extra (or ``__extra__=<JSON>`` for one that is not flat text)."""
        if not isinstance(uri, str) or "://" not in uri:
            raise InvalidConnectionError(conn_id, f"{_shown(uri)} is not a URI: it has no type://")
        try:
            parts = urlsplit(uri.strip())
            port = parts.port
        except ValueError as exc:
            raise InvalidConnectionError(conn_id, f"{_shown(uri)} is not a usable URI ({exc})") from None
        if not parts.scheme:
            raise InvalidConnectionError(conn_id, f"{_shown(uri)} is not a URI: it has no type before ://")
        query = parse_qsl(parts.query, keep_blank_values=True)
        if any(key == EXTRA_KEY for key, _ in query):
            if len(query) > 1:
                raise InvalidConnectionError(conn_id, f"its URI has {EXTRA_KEY} and other query parameters",
                                             f"Put the whole extra in {EXTRA_KEY}, or give it as key=value pairs")
            extra: Any = dict(query)[EXTRA_KEY]
        else:
            extra = dict(query)
        return cls(
            conn_id, parts.scheme.replace("-", "_"),
            host=unquote(parts.hostname) if parts.hostname else None,
            schema=unquote(parts.path[1:]) if parts.path.startswith("/") else (unquote(parts.path) or None),
            login=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            port=port, extra=extra, description=description,
        )

    def get_uri(self) -> str:
        """The URI that :meth:`from_uri` reads back into this connection (password included)."""
        uri = f"{self.conn_type.replace('_', '-')}://"
        if self.login or self.password:
            uri += quote(self.login or "", safe="")
            if self.password:
                uri += ":" + quote(self.password, safe="")
            uri += "@"
        if self.host:
            uri += quote(self.host, safe="")
        if self.port:
            uri += f":{self.port}"
        if self.schema:
            uri += "/" + quote(self.schema, safe="")
        if self.extra_dejson:
            flat = all(isinstance(value, str) for value in self.extra_dejson.values())
            uri += "?" + urlencode(self.extra_dejson if flat else {EXTRA_KEY: json.dumps(self.extra_dejson)})
        return uri

    # -- lookup -------------------------------------------------------------------------------

    @classmethod
    def get(cls, conn_id: str) -> Connection:
        """Connection ``conn_id``: ``NBFLOW_CONN_<ID>`` when set, else the store's.

        Raises :class:`ConnectionNotFoundError` when neither has it.
        """
        uri = env_connection_uri(conn_id)
        if uri is not None:
            try:
                return cls.from_uri(conn_id, uri)
            except InvalidConnectionError as exc:
                raise InvalidConnectionError(conn_id, f"the environment variable {conn_env_name(conn_id)}: {exc.problem}") from None
        check_conn_id(conn_id)
        from nbflow.store import Store

        with Store.open() as store:
            row = store.get_connection(conn_id)
            if row is None:
                raise ConnectionNotFoundError(conn_id, [r["conn_id"] for r in store.list_connections()])
        return cls(conn_id, row["conn_type"], host=row["host"], schema=row["schema"], login=row["login"],
                   password=row["password"], port=row["port"], extra=row["extra"], description=row["description"])

    # Airflow's name for the same lookup
    get_connection_from_secrets = get


def _shown(uri: Any) -> str:
    """A URI for an error message, its password hidden."""
    if not isinstance(uri, str):
        return repr(uri)
    try:
        parts = urlsplit(uri)
        if parts.password:
            netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
            return repr(parts._replace(netloc=netloc).geturl())
    except ValueError:
        pass
    if "@" in uri:
        return repr("***@" + uri.rsplit("@", 1)[1])
    return repr(uri)
