"""What a connection or a variable may hold: ids, keys, ports and extras, and the environment variables
that define them (``NBFLOW_CONN_<ID>``, ``NBFLOW_VAR_<KEY>``).

One set of checks for every way in (the ``Connection`` class, the store, the command line and the
REST API), so that what one accepts the others can read back.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

from nbflow.errors import InvalidConnectionError, InvalidRequestError

CONN_ENV_PREFIX = "NBFLOW_CONN_"
VAR_ENV_PREFIX = "NBFLOW_VAR_"
MAX_ID = 250
# letters, digits, _ . -: an id must be usable in a template ({{ conn.my_db.host }}) and, upper-cased,
# in an environment variable's name (where . and - cannot appear, so such ids live in the store only)
_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def check_conn_id(conn_id: Any) -> str:
    if not isinstance(conn_id, str) or not _ID.match(conn_id) or len(conn_id) > MAX_ID:
        raise InvalidConnectionError(
            None, f"the id {conn_id!r} is not usable",
            f"Use letters, digits, _ . and - (up to {MAX_ID} characters), e.g. my_db",
        )
    return conn_id


def check_variable_key(key: Any) -> str:
    if not isinstance(key, str) or not _ID.match(key) or len(key) > MAX_ID:
        raise InvalidRequestError(
            f"the variable key {key!r} is not usable. Use letters, digits, _ . and - (up to {MAX_ID} "
            "characters), e.g. report_recipients."
        )
    return key


def check_port(conn_id: str | None, port: Any) -> int | None:
    if port is None or port == "":
        return None
    if isinstance(port, bool) or not isinstance(port, (int, str)):
        number = None
    else:
        try:
            number = int(port)
        except ValueError:
            number = None
    if number is None or not 0 < number < 65536:
        raise InvalidConnectionError(conn_id, f"the port {port!r} is not a port number",
                                     "Give a whole number from 1 to 65535")
    return number


def parse_extra(conn_id: str | None, extra: Any) -> dict[str, Any]:
    """``extra`` as a dict: given as one, as JSON text, or left out (empty)."""
    if extra is None or extra == "":
        return {}
    if isinstance(extra, str):
        try:
            extra = json.loads(extra)
        except json.JSONDecodeError as exc:
            raise InvalidConnectionError(conn_id, f"its extra is not valid JSON ({exc})",
                                         'Give a JSON object, e.g. {"timeout": 10}') from None
    if not isinstance(extra, Mapping):
        raise InvalidConnectionError(conn_id, f"its extra is a {type(extra).__name__}, not a JSON object",
                                     'Give a JSON object, e.g. {"timeout": 10}')
    try:
        json.dumps(dict(extra), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidConnectionError(conn_id, f"its extra cannot be written as JSON ({exc})",
                                     "Give plain values: strings, finite numbers, booleans, null, lists and objects") from None
    return dict(extra)


def conn_env_name(conn_id: str) -> str:
    return CONN_ENV_PREFIX + conn_id.upper()


def var_env_name(key: str) -> str:
    return VAR_ENV_PREFIX + key.upper()


def env_connection_uri(conn_id: str, env: Mapping[str, str] | None = None) -> str | None:
    """The URI ``NBFLOW_CONN_<ID>`` gives connection ``conn_id``, if set (it takes precedence over the store)."""
    return (os.environ if env is None else env).get(conn_env_name(conn_id))


def env_variable(key: str, env: Mapping[str, str] | None = None) -> str | None:
    return (os.environ if env is None else env).get(var_env_name(key))


def env_ids(prefix: str, env: Mapping[str, str] | None = None) -> list[str]:
    """The ids (lower-cased) that environment variables with ``prefix`` define."""
    source = os.environ if env is None else env
    return sorted(name[len(prefix):].lower() for name in source if name.startswith(prefix) and len(name) > len(prefix))
