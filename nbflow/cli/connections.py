"""``nbflow connections ...`` and ``nbflow variables ...``: credentials and values kept out of DAG code.

Listings never print a password or an extra (they may hold tokens): only whether one is set.
``connections get`` prints the connection with its password hidden; ``--show-password`` is the way
to see it.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from nbflow.cli.common import _open_store

_HIDDEN = "***"


def add_parsers(sub: Any) -> None:
    """The ``connections`` and ``variables`` command groups, on the top-level subparsers ``sub``."""
    conns = sub.add_parser("connections", help="add, list, get and delete connections (credentials kept encrypted)"
                           ).add_subparsers(dest="connections_command", required=True, metavar="ACTION")
    p = conns.add_parser("add", help="add or replace a connection, from a URI or from its fields")
    p.add_argument("conn_id", metavar="ID")
    p.add_argument("--conn-uri", help="type://login:password@host:port/schema?key=value (not with the --conn-* fields)")
    p.add_argument("--conn-type", help="e.g. postgres, http")
    p.add_argument("--conn-host")
    p.add_argument("--conn-login")
    p.add_argument("--conn-password")
    p.add_argument("--conn-port")
    p.add_argument("--conn-schema")
    p.add_argument("--conn-extra", metavar="JSON", help='a JSON object, e.g. {"timeout": 10}')
    p.add_argument("--conn-description")
    p.set_defaults(func=cmd_connections_add)
    p = conns.add_parser("list", help="every connection (passwords and extras never shown)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_connections_list)
    p = conns.add_parser("get", help="one connection, from NBFLOW_CONN_<ID> or the store")
    p.add_argument("conn_id", metavar="ID")
    p.add_argument("--json", action="store_true")
    p.add_argument("--show-password", action="store_true", help="print the password instead of ***")
    p.set_defaults(func=cmd_connections_get)
    p = conns.add_parser("delete", help="remove a connection from the store")
    p.add_argument("conn_id", metavar="ID")
    p.set_defaults(func=cmd_connections_delete)

    variables = sub.add_parser("variables", help="set, get, list and delete variables (kept encrypted)"
                               ).add_subparsers(dest="variables_command", required=True, metavar="ACTION")
    p = variables.add_parser("set", help="set a variable")
    p.add_argument("key")
    p.add_argument("value")
    p.add_argument("--json", action="store_true", help="check that VALUE is JSON (read it with deserialize_json=True)")
    p.add_argument("--description")
    p.set_defaults(func=cmd_variables_set)
    p = variables.add_parser("get", help="print a variable's value (NBFLOW_VAR_<KEY> first, then the store)")
    p.add_argument("key")
    p.add_argument("--default", help="print this when the variable is not set (instead of an error)")
    p.add_argument("--json", action="store_true", help="print the value as indented JSON")
    p.set_defaults(func=cmd_variables_get)
    p = variables.add_parser("list", help="the variables' keys (values are not shown)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_variables_list)
    p = variables.add_parser("delete", help="remove a variable from the store")
    p.add_argument("key")
    p.set_defaults(func=cmd_variables_delete)


# -- connections ------------------------------------------------------------------------------------


def cmd_connections_add(args: argparse.Namespace) -> int:
    from nbflow.connection import Connection
    from nbflow.errors import InvalidConnectionError

    fields = {name: getattr(args, f"conn_{name}") for name in
              ("type", "host", "login", "password", "port", "schema", "extra")}
    if args.conn_uri is not None:
        given = [f"--conn-{name}" for name, value in fields.items() if value is not None]
        if given:
            raise InvalidConnectionError(args.conn_id, f"--conn-uri and {', '.join(given)} are both given",
                                         "Give either the URI or the --conn-* fields")
        connection = Connection.from_uri(args.conn_id, args.conn_uri, description=args.conn_description)
    elif fields["type"] is None:
        raise InvalidConnectionError(args.conn_id, "neither --conn-uri nor --conn-type is given",
                                     "Give --conn-uri URI, or --conn-type TYPE with the other --conn-* fields")
    else:
        connection = Connection(args.conn_id, fields["type"], host=fields["host"], schema=fields["schema"],
                                login=fields["login"], password=fields["password"], port=fields["port"],
                                extra=fields["extra"], description=args.conn_description)
    with _open_store() as store:
        store.set_connection(args.conn_id, **connection.fields())
    print(f"connection '{args.conn_id}' stored ({connection.conn_type})")
    return 0


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    return {"conn_id": row["conn_id"], "conn_type": row["conn_type"], "host": row["host"],
            "schema": row["schema"], "login": row["login"], "port": row["port"],
            "password": _HIDDEN if row["has_password"] else None, "extra": _HIDDEN if row["has_extra"] else None,
            "description": row["description"], "source": row["source"]}


def cmd_connections_list(args: argparse.Namespace) -> int:
    from nbflow.connection import Connection
    from nbflow.credentials import CONN_ENV_PREFIX, env_ids

    with _open_store() as store:
        rows = [{**row, "source": "store"} for row in store.list_connections()]
    from_env = set()
    for conn_id in env_ids(CONN_ENV_PREFIX):
        found = Connection.get(conn_id)
        from_env.add(conn_id)
        rows.append({**found.fields(), "conn_id": conn_id, "has_password": bool(found.password),
                     "has_extra": bool(found.extra_dejson), "source": f"NBFLOW_CONN_{conn_id.upper()}"})
    # the environment wins over the store, as when a task looks one up
    rows = sorted((r for r in rows if r["source"] != "store" or r["conn_id"] not in from_env), key=lambda r: r["conn_id"])
    shown = [_shown(r) for r in rows]
    if args.json:
        print(json.dumps(shown, indent=2))
        return 0
    if not shown:
        print("no connections; add one with `nbflow connections add ID --conn-uri URI`")
        return 0
    for item in shown:
        where = f"{item['host'] or ''}{':' + str(item['port']) if item['port'] else ''}"
        secret = " password ***" if item["password"] else ""
        print(f"{item['conn_id']}\t{item['conn_type']}\t{item['login'] or ''}@{where}{secret}\t({item['source']})")
    return 0


def cmd_connections_get(args: argparse.Namespace) -> int:
    from nbflow.connection import Connection

    found = Connection.get(args.conn_id)
    fields = {"conn_id": found.conn_id, **found.fields()}
    if not args.show_password and fields["password"]:
        fields["password"] = _HIDDEN
    if args.json:
        print(json.dumps(fields, indent=2))
    else:
        for key, value in fields.items():
            print(f"{key}: {json.dumps(value) if key == 'extra' else ('' if value is None else value)}")
    return 0


def cmd_connections_delete(args: argparse.Namespace) -> int:
    with _open_store() as store:
        store.delete_connection(args.conn_id)
    print(f"connection '{args.conn_id}' deleted")
    return 0


# -- variables --------------------------------------------------------------------------------------


def cmd_variables_set(args: argparse.Namespace) -> int:
    from nbflow.errors import InvalidRequestError

    if args.json:
        try:
            json.loads(args.value)
        except json.JSONDecodeError as exc:
            raise InvalidRequestError(f"variable '{args.key}': --json is given but the value is not JSON ({exc}). "
                                      "Quote it for the shell, e.g. '{\"a\": 1}', or leave out --json.") from None
    with _open_store() as store:
        store.set_variable(args.key, args.value, args.description)
    print(f"variable '{args.key}' set")
    return 0


def cmd_variables_get(args: argparse.Namespace) -> int:
    from nbflow.variable import Variable

    missing = object()
    value = Variable.get(args.key, default_var=missing, deserialize_json=args.json)
    if value is missing:
        if args.default is None:
            from nbflow.errors import VariableNotFoundError

            raise VariableNotFoundError(args.key)
        print(args.default)
    elif args.json:
        print(json.dumps(value, indent=2))
    else:
        print(value)
    return 0


def cmd_variables_list(args: argparse.Namespace) -> int:
    from nbflow.credentials import VAR_ENV_PREFIX, env_ids

    with _open_store() as store:
        rows = {row["key"]: {"key": row["key"], "description": row["description"], "source": "store"}
                for row in store.list_variables()}
    for key in env_ids(VAR_ENV_PREFIX):
        rows[key] = {"key": key, "description": None, "source": f"{VAR_ENV_PREFIX}{key.upper()}"}
    shown = [rows[key] for key in sorted(rows)]
    if args.json:
        print(json.dumps(shown, indent=2))
    elif not shown:
        print("no variables; set one with `nbflow variables set KEY VALUE`")
    for item in [] if args.json else shown:
        print(f"{item['key']}\t({item['source']}){'  ' + item['description'] if item['description'] else ''}")
    return 0


def cmd_variables_delete(args: argparse.Namespace) -> int:
    with _open_store() as store:
        store.delete_variable(args.key)
    print(f"variable '{args.key}' deleted")
    return 0
