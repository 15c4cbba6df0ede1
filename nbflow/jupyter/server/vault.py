"""``connections`` and ``variables``: what DAG code names instead of holding credentials.

No answer carries a password or a connection's extra (it may hold tokens): a listing says only
whether one is set (``has_password``, ``has_extra``), as ``nbflow connections list`` does. Variables
are listed by key and description; a variable's value is read one at a time
(``GET variables/{key}``), as the command line's ``variables get`` does, with the API's ``read``
permission: variables hold settings for DAGs, while secrets belong in connections.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from nbflow.connection import Connection
from nbflow.credentials import CONN_ENV_PREFIX, VAR_ENV_PREFIX, check_variable_key, conn_env_name, env_ids, env_variable, var_env_name
from nbflow.errors import InvalidConnectionError, InvalidRequestError, VariableNotFoundError
from nbflow.jupyter.server.base import NbflowHandler

if TYPE_CHECKING:
    from nbflow.jupyter.server.services import Services

#: what a new connection may be given, besides its id
FIELDS = ("conn_type", "host", "login", "password", "port", "schema", "extra", "description")


def _listed(row: dict[str, Any], source: str) -> dict[str, Any]:
    return {"conn_id": row["conn_id"], "conn_type": row["conn_type"], "host": row["host"], "schema": row["schema"],
            "login": row["login"], "port": row["port"], "description": row["description"],
            "has_password": bool(row["has_password"]), "has_extra": bool(row["has_extra"]), "source": source}


def list_connections(services: Services) -> dict[str, Any]:
    """The store's connections and those of ``NBFLOW_CONN_*`` (which win, as when a task looks one up)."""
    rows = {row["conn_id"]: _listed(row, "store") for row in services.store.list_connections()}
    for conn_id in env_ids(CONN_ENV_PREFIX):
        source = conn_env_name(conn_id)
        try:
            found = Connection.get(conn_id)
        except InvalidConnectionError as exc:  # one bad variable does not hide the others
            rows[conn_id] = {"conn_id": conn_id, "source": source, "error": str(exc)}
            continue
        rows[conn_id] = _listed({**found.fields(), "conn_id": conn_id, "has_password": found.password,
                                 "has_extra": found.extra_dejson}, source)
    return {"connections": [rows[key] for key in sorted(rows)]}


def create_connection(services: Services, body: dict[str, Any]) -> dict[str, Any]:
    """Add or replace a connection, from ``uri`` or from its fields; the answer is its listing."""
    conn_id = body.get("conn_id")
    unknown = sorted(set(body) - {"conn_id", "uri", *FIELDS})
    if unknown:
        raise InvalidConnectionError(conn_id if isinstance(conn_id, str) else None, f"{', '.join(map(repr, unknown))} "
                                     "is not a connection field", f"Give conn_id with uri, or with {', '.join(FIELDS)}")
    if "uri" in body:
        given = [name for name in FIELDS if name != "description" and body.get(name) is not None]
        if given:
            raise InvalidConnectionError(conn_id, f"uri and {', '.join(given)} are both given",
                                         "Give either the URI or the fields")
        connection = Connection.from_uri(conn_id, body["uri"], description=body.get("description"))
    else:
        for name in FIELDS:
            value = body.get(name)
            if value is not None and name != "extra" and not isinstance(value, (str, int) if name == "port" else str):
                raise InvalidConnectionError(conn_id, f"its {name} is a {type(value).__name__}, not text",
                                             f"Give {name} as a JSON string")
        if body.get("conn_type") is None:
            raise InvalidConnectionError(conn_id, "neither uri nor conn_type is given",
                                         "Give uri, or conn_type with the other fields")
        connection = Connection(conn_id, body["conn_type"], **{k: body.get(k) for k in FIELDS if k != "conn_type"})
    store = services.store
    replaced = any(row["conn_id"] == connection.conn_id for row in store.list_connections())
    store.set_connection(connection.conn_id, **connection.fields())
    row = next(r for r in store.list_connections() if r["conn_id"] == connection.conn_id)
    return {"connection": _listed(row, "store"), "replaced": replaced}


def delete_connection(services: Services, conn_id: str) -> dict[str, Any]:
    services.store.delete_connection(conn_id)
    return {"deleted": conn_id}


def list_variables(services: Services) -> dict[str, Any]:
    """Keys and descriptions, never values; ``NBFLOW_VAR_*`` ones win over the store's."""
    rows = {row["key"]: {"key": row["key"], "description": row["description"], "source": "store",
                         "updated_at": row["updated_at"]} for row in services.store.list_variables()}
    for key in env_ids(VAR_ENV_PREFIX):
        rows[key] = {"key": key, "description": None, "source": var_env_name(key), "updated_at": None}
    return {"variables": [rows[key] for key in sorted(rows)]}


def get_variable(services: Services, key: str) -> dict[str, Any]:
    check_variable_key(key)
    value = env_variable(key)
    if value is not None:
        return {"key": key, "value": value, "source": var_env_name(key)}
    value = services.store.get_variable(key)
    if value is None:
        raise VariableNotFoundError(key)
    return {"key": key, "value": value, "source": "store"}


def set_variable(services: Services, body: dict[str, Any]) -> dict[str, Any]:
    """Set a variable: text is stored as it is, any other JSON value as its JSON text (read it back
    with ``deserialize_json=True``)."""
    unknown = sorted(set(body) - {"key", "value", "description"})
    if unknown:
        raise InvalidRequestError(f"{', '.join(map(repr, unknown))} is not a variable field; give key, value and "
                                  "optionally description")
    key = check_variable_key(body.get("key"))
    if "value" not in body:
        raise InvalidRequestError(f"variable '{key}': no value is given; give \"value\" (text, or any JSON value)")
    value, description = body["value"], body.get("description")
    if description is not None and not isinstance(description, str):
        raise InvalidRequestError(f"variable '{key}': its description is a {type(description).__name__}, not text")
    text = value if isinstance(value, str) else json.dumps(value, allow_nan=False)
    services.store.set_variable(key, text, description)
    return {"key": key, "description": description, "source": "store"}


def delete_variable(services: Services, key: str) -> dict[str, Any]:
    services.store.delete_variable(key)
    return {"deleted": key}


# -- handlers ---------------------------------------------------------------------------------------


class ConnectionsHandler(NbflowHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(await self.services.call(list_connections, self.services))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body()
        self.reply(await self.services.call(create_connection, self.services, body), status=201)


class ConnectionHandler(NbflowHandler):
    @web.authenticated
    @authorized
    async def delete(self, conn_id: str) -> None:
        self.reply(await self.services.call(delete_connection, self.services, conn_id))


class VariablesHandler(NbflowHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(await self.services.call(list_variables, self.services))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body()
        self.reply(await self.services.call(set_variable, self.services, body), status=201)


class VariableHandler(NbflowHandler):
    @web.authenticated
    @authorized
    async def get(self, key: str) -> None:
        self.reply(await self.services.call(get_variable, self.services, key))

    @web.authenticated
    @authorized
    async def delete(self, key: str) -> None:
        self.reply(await self.services.call(delete_variable, self.services, key))
