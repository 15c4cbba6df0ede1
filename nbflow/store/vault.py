"""The store's connections and variables: what DAG code names instead of holding credentials.

Passwords, extras and variable values are encrypted on their way in and decrypted only when one
connection or variable is asked for by name; the listings never decrypt (what views show of them
cannot leak what they never had). A mixin of :class:`nbflow.store.Store`, kept apart because it is
its own concern: the rest of the store never sees a secret.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select

from nbflow.credentials import check_conn_id, check_port, check_variable_key, parse_extra
from nbflow.errors import ConnectionNotFoundError, InvalidConnectionError, InvalidRequestError, VariableNotFoundError
from nbflow.store import schema
from nbflow.store.engine import read_connection, write_transaction

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from nbflow.settings import Settings
    from nbflow.store.crypto import Cipher

_conn, _var = schema.connection, schema.variable
#: what listings show of a connection: never its password or extra, only whether it has them
_LISTED = (_conn.c.conn_id, _conn.c.conn_type, _conn.c.description, _conn.c.host, _conn.c.schema,
           _conn.c.login, _conn.c.port)


class VaultMixin:
    """Connections and variables of a :class:`Store`; needs its ``_engine``, ``url`` and ``_upsert``."""

    url: str
    _engine: Engine
    _settings: Settings | None = None
    _cipher: Cipher | None = None

    def _upsert(self, table: Any, keys: Any, conflict: Any) -> Any:  # provided by Store
        raise NotImplementedError

    def cipher(self) -> Cipher:
        """The Fernet cipher of this store's settings (the current ones when it was opened by URL)."""
        if self._cipher is None:
            from nbflow.store.crypto import cipher_for

            settings = self._settings
            if settings is None:
                from nbflow.settings import get_settings

                settings = get_settings()
            self._cipher = cipher_for(settings)
        return self._cipher

    # -- connections --------------------------------------------------------------------------

    def set_connection(
        self, conn_id: str, *, conn_type: str, host: str | None = None, schema: str | None = None,
        login: str | None = None, password: str | None = None, port: int | str | None = None,
        extra: dict[str, Any] | str | None = None, description: str | None = None,
    ) -> None:
        """Add connection ``conn_id``, or replace it whole (a field left out is cleared, as a URI says
        everything)."""
        check_conn_id(conn_id)
        if not isinstance(conn_type, str) or not conn_type.strip():
            raise InvalidConnectionError(conn_id, "it has no type", "Give --conn-type (e.g. postgres, http) or a URI")
        extras = parse_extra(conn_id, extra)
        port_number = check_port(conn_id, port)
        # the key (and, on first use, its file) is needed only for a secret
        cipher = self.cipher() if password or extras else None
        values = {
            "conn_id": conn_id, "conn_type": conn_type, "host": host or None, "schema": schema or None,
            "login": login or None, "port": port_number, "description": description,
            "password": cipher.encrypt(password) if cipher and password else None,
            "extra": cipher.encrypt(json.dumps(extras)) if cipher and extras else None,
            "updated_at": datetime.now(UTC),
        }
        with write_transaction(self._engine, self.url) as conn:
            conn.execute(self._upsert(_conn, sorted(values), ("conn_id",)), values)

    def get_connection(self, conn_id: str) -> dict[str, Any] | None:
        """Connection ``conn_id`` with its password and extra (a dict) decrypted, or None."""
        with read_connection(self._engine, self.url) as conn:
            row = conn.execute(select(_conn).where(_conn.c.conn_id == conn_id)).mappings().first()
        if row is None:
            return None
        found = dict(row)
        cipher = self.cipher()
        if found["password"] is not None:
            found["password"] = cipher.decrypt(found["password"], f"the password of connection '{conn_id}'")
        found["extra"] = (json.loads(cipher.decrypt(found["extra"], f"the extra of connection '{conn_id}'"))
                          if found["extra"] is not None else {})
        return found

    def list_connections(self) -> list[dict[str, Any]]:
        """Every stored connection without its secrets: ``has_password`` and ``has_extra`` say whether
        it has them."""
        with read_connection(self._engine, self.url) as conn:
            rows = conn.execute(
                select(*_LISTED, _conn.c.password.is_not(None).label("has_password"),
                       _conn.c.extra.is_not(None).label("has_extra")).order_by(_conn.c.conn_id)
            ).mappings().all()
        return [{**row, "has_password": bool(row["has_password"]), "has_extra": bool(row["has_extra"])} for row in rows]

    def delete_connection(self, conn_id: str) -> None:
        """Raises :class:`ConnectionNotFoundError` for an id the store does not have."""
        with write_transaction(self._engine, self.url) as conn:
            if conn.execute(delete(_conn).where(_conn.c.conn_id == conn_id)).rowcount == 0:
                raise ConnectionNotFoundError(conn_id, list(conn.execute(select(_conn.c.conn_id)).scalars()))

    # -- variables ----------------------------------------------------------------------------

    def set_variable(self, key: str, value: str, description: str | None = None) -> None:
        """Set variable ``key`` to the text ``value``, encrypted."""
        check_variable_key(key)
        if not isinstance(value, str):
            raise InvalidRequestError(f"variable '{key}': its value is a {type(value).__name__}, not text. "
                                      "Pass text, or use Variable.set(key, value, serialize_json=True).")
        values = {"key": key, "value": self.cipher().encrypt(value), "description": description,
                  "is_encrypted": True, "updated_at": datetime.now(UTC)}
        with write_transaction(self._engine, self.url) as conn:
            conn.execute(self._upsert(_var, sorted(values), ("key",)), values)

    def get_variable(self, key: str) -> str | None:
        """The text of variable ``key``, decrypted, or None when the store has none."""
        with read_connection(self._engine, self.url) as conn:
            row = conn.execute(select(_var.c.value, _var.c.is_encrypted).where(_var.c.key == key)).first()
        if row is None:
            return None
        value, encrypted = row
        if value is None or not encrypted:
            return value  # type: ignore[no-any-return]
        return self.cipher().decrypt(value, f"the value of variable '{key}'")

    def list_variables(self) -> list[dict[str, Any]]:
        """Every stored variable's key, description and whether it is encrypted, without its value."""
        with read_connection(self._engine, self.url) as conn:
            return [dict(row) for row in conn.execute(
                select(_var.c.key, _var.c.description, _var.c.is_encrypted, _var.c.updated_at).order_by(_var.c.key)
            ).mappings()]

    def delete_variable(self, key: str) -> None:
        """Raises :class:`VariableNotFoundError` for a key the store does not have."""
        with write_transaction(self._engine, self.url) as conn:
            if conn.execute(delete(_var).where(_var.c.key == key)).rowcount == 0:
                raise VariableNotFoundError(key)
