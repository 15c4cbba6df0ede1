"""Connections and variables in the store, on both backends: secrets are encrypted at rest, listings
never carry them, and a wrong or exposed key is a clear nbflow error."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

from nbflow.errors import (
    ConfigError,
    ConnectionNotFoundError,
    DecryptionError,
    InvalidConnectionError,
    InvalidRequestError,
    SecretKeyError,
    VariableNotFoundError,
)
from nbflow.settings import load_settings
from nbflow.store import Store
from nbflow.store.migrate import init_db

PASSWORD = "pa55-w0rd-never-in-clear"
TOKEN = "api-token-never-in-clear"


def raw_rows(url: str, table: str) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return repr(conn.execute(text(f"SELECT * FROM {table}")).all())
    finally:
        engine.dispose()


def test_connection_round_trip_with_secrets_encrypted_at_rest(store: Store, nbflow_home: Path) -> None:
    store.set_connection("db", conn_type="postgres", host="db.example", schema="sales", login="ann",
                         password=PASSWORD, port="5432", extra={"token": TOKEN}, description="sales db")
    found = store.get_connection("db")
    assert found is not None
    assert (found["host"], found["port"], found["password"], found["extra"]) == ("db.example", 5432, PASSWORD, {"token": TOKEN})
    raw = raw_rows(store.url, "connection")
    assert "db.example" in raw and PASSWORD not in raw and TOKEN not in raw
    listed = store.list_connections()
    assert [row["conn_id"] for row in listed] == ["db"]
    assert listed[0]["has_password"] and listed[0]["has_extra"]
    assert PASSWORD not in repr(listed) and TOKEN not in repr(listed) and "password" not in listed[0]
    # replacing is whole: a field left out is cleared
    store.set_connection("db", conn_type="postgres", host="other")
    again = store.get_connection("db")
    assert again is not None and again["password"] is None and again["extra"] == {} and again["port"] is None
    store.delete_connection("db")
    assert store.get_connection("db") is None
    with pytest.raises(ConnectionNotFoundError, match="no connection 'db'.*nbflow connections add db"):
        store.delete_connection("db")


def test_variables_are_encrypted_and_listed_without_values(store: Store, nbflow_home: Path) -> None:
    store.set_variable("secret", PASSWORD, "the password")
    assert store.get_variable("secret") == PASSWORD
    assert PASSWORD not in raw_rows(store.url, "variable")
    listed = store.list_variables()
    assert [(r["key"], r["description"], r["is_encrypted"]) for r in listed] == [("secret", "the password", True)]
    assert PASSWORD not in repr(listed)
    assert store.get_variable("missing") is None
    store.delete_variable("secret")
    with pytest.raises(VariableNotFoundError, match="nbflow variables set secret"):
        store.delete_variable("secret")


def test_bad_fields_are_refused_and_nothing_is_stored(store: Store, nbflow_home: Path) -> None:
    with pytest.raises(InvalidConnectionError, match="port 'http'"):
        store.set_connection("db", conn_type="postgres", port="http")
    with pytest.raises(InvalidConnectionError, match="not valid JSON"):
        store.set_connection("db", conn_type="postgres", extra="{bad")
    with pytest.raises(InvalidConnectionError, match="list, not a JSON object"):
        store.set_connection("db", conn_type="postgres", extra=[1])
    with pytest.raises(InvalidConnectionError, match="id 'my db'"):
        store.set_connection("my db", conn_type="postgres")
    with pytest.raises(InvalidConnectionError, match="no type"):
        store.set_connection("db", conn_type="")
    with pytest.raises(InvalidRequestError, match="not text"):
        store.set_variable("n", 3)  # type: ignore[arg-type]
    assert store.list_connections() == [] and store.list_variables() == []


def test_key_file_is_made_private_and_kept(store: Store, nbflow_home: Path) -> None:
    store.set_variable("x", "1")
    key_file = nbflow_home / "fernet.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_bytes()
    with Store(store.url) as again:
        assert again.get_variable("x") == "1"
    assert key_file.read_bytes() == key


def test_a_key_file_others_can_read_is_refused(store: Store, nbflow_home: Path) -> None:
    key_file = nbflow_home / "fernet.key"
    key_file.write_bytes(Fernet.generate_key())
    os.chmod(key_file, 0o644)
    with pytest.raises(SecretKeyError, match=r"read or written by others \(mode 0644\).*chmod 600"):
        store.set_variable("x", "1")
    assert store.list_variables() == []


def test_a_key_file_without_a_key_is_refused(store: Store, nbflow_home: Path) -> None:
    key_file = nbflow_home / "fernet.key"
    key_file.write_text("not a key\n")
    os.chmod(key_file, 0o600)
    with pytest.raises(SecretKeyError, match="does not hold a Fernet key"):
        store.set_connection("db", conn_type="http", password="x")


def test_wrong_key_is_a_clear_error_and_rotation_works(store_url: str, nbflow_home: Path) -> None:
    init_db(store_url)
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()

    def opened(key: str) -> Store:
        settings = load_settings(env={"NBFLOW_HOME": str(nbflow_home), "NBFLOW_DATABASE_URL": store_url,
                                      "NBFLOW_FERNET_KEY": key})
        return Store.open(settings)

    with opened(old) as store:
        store.set_connection("db", conn_type="postgres", password=PASSWORD)
        store.set_variable("v", "value")
    with opened(new) as store:
        with pytest.raises(DecryptionError, match="password of connection 'db'.*NBFLOW_FERNET_KEY") as caught:
            store.get_connection("db")
        assert "Traceback" not in str(caught.value) and "InvalidToken" not in str(caught.value)
        with pytest.raises(DecryptionError, match="value of variable 'v'"):
            store.get_variable("v")
        assert store.list_connections()[0]["conn_id"] == "db"  # listings need no key
    with opened(f"{new},{old}") as store:  # rotation: the new key encrypts, the old one still decrypts
        assert store.get_connection("db")["password"] == PASSWORD  # type: ignore[index]
        store.set_variable("v2", "fresh")
    with opened(new) as store:
        assert store.get_variable("v2") == "fresh"


def test_bad_fernet_key_setting_names_the_setting_without_showing_it(nbflow_home: Path) -> None:
    with pytest.raises(ConfigError, match=r"'fernet_key' = '\*\*\*'.*NBFLOW_FERNET_KEY") as caught:
        load_settings(env={"NBFLOW_HOME": str(nbflow_home), "NBFLOW_FERNET_KEY": "short-secret"})
    assert "short-secret" not in str(caught.value)
    (nbflow_home / "nbflow.toml").write_text('fernet_key = "also-bad"\n')
    with pytest.raises(ConfigError, match="fernet_key.*nbflow.toml"):
        load_settings(env={"NBFLOW_HOME": str(nbflow_home)})
    key = Fernet.generate_key().decode()
    (nbflow_home / "nbflow.toml").write_text(f'fernet_key = "{key}"\n')
    settings = load_settings(env={"NBFLOW_HOME": str(nbflow_home)})
    assert settings.fernet_key == key and key not in repr(settings)


def test_upgrade_from_0004_adds_the_tables_and_downgrade_removes_them(store_url: str) -> None:
    from alembic import command
    from sqlalchemy import inspect

    from nbflow.store.migrate import alembic_config, check_db, upgrade_db

    command.upgrade(alembic_config(store_url), "0004")
    upgrade_db(store_url)
    check_db(store_url)
    engine = create_engine(store_url)
    try:
        assert {"connection", "variable"} <= set(inspect(engine).get_table_names())
        command.downgrade(alembic_config(store_url), "0004")
        assert not {"connection", "variable"} & set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
