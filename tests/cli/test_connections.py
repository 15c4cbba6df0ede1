"""``nbflow connections`` and ``nbflow variables`` run as a user runs them: listings never print a
secret, bad input is one line and a non-zero exit."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from cli.conftest import nbflow, one_line

SECRET = "s3cr3t-p4ss"


def test_connections_add_list_get_delete(nbflow_home: Path) -> None:
    nbflow("connections", "add", "db", "--conn-uri", f"postgresql://ann:{SECRET}@db.example:5432/sales?sslmode=require",
           home=nbflow_home)
    nbflow("connections", "add", "api", "--conn-type", "http", "--conn-host", "api.example", "--conn-port", "443",
           "--conn-password", SECRET, "--conn-extra", '{"token": "tok-123"}', home=nbflow_home)
    listed = nbflow("connections", "list", home=nbflow_home).stdout
    assert "db" in listed and "api.example" in listed and SECRET not in listed and "tok-123" not in listed
    as_json = json.loads(nbflow("connections", "list", "--json", home=nbflow_home,
                                env={"NBFLOW_CONN_FROM_ENV": f"http://u:{SECRET}@e.example"}).stdout)
    assert [c["conn_id"] for c in as_json] == ["api", "db", "from_env"]
    assert {c["password"] for c in as_json} == {"***"} and SECRET not in json.dumps(as_json)
    got = nbflow("connections", "get", "db", home=nbflow_home).stdout
    assert "host: db.example" in got and "password: ***" in got and SECRET not in got
    shown = json.loads(nbflow("connections", "get", "db", "--json", "--show-password", home=nbflow_home).stdout)
    assert shown["password"] == SECRET and shown["extra"] == {"sslmode": "require"}
    raw = sqlite3.connect(nbflow_home / "nbflow.db").execute("SELECT * FROM connection").fetchall()
    assert SECRET not in repr(raw) and "tok-123" not in repr(raw)
    nbflow("connections", "delete", "db", home=nbflow_home)
    assert "no connection 'db'" in one_line(nbflow("connections", "get", "db", home=nbflow_home, check=1))


@pytest.mark.parametrize("args, expected", [
    (["--conn-uri", "nonsense"], "connection 'x': 'nonsense' is not a URI"),
    (["--conn-uri", "http://h:notaport"], "connection 'x': 'http://h:notaport' is not a usable URI"),
    (["--conn-type", "http", "--conn-port", "seventy"], "connection 'x': the port 'seventy' is not a port number"),
    (["--conn-type", "http", "--conn-extra", "{nope"], "connection 'x': its extra is not valid JSON"),
    (["--conn-uri", "http://h", "--conn-host", "other"], "--conn-uri and --conn-host are both given"),
    ([], "neither --conn-uri nor --conn-type is given"),
])
def test_bad_connections_are_one_line_and_exit_1(nbflow_home: Path, args: list[str], expected: str) -> None:
    assert expected in one_line(nbflow("connections", "add", "x", *args, home=nbflow_home, check=1))
    assert "no connections" in nbflow("connections", "list", home=nbflow_home).stdout


def test_variables_set_get_list_delete(nbflow_home: Path) -> None:
    nbflow("variables", "set", "token", SECRET, home=nbflow_home)
    nbflow("variables", "set", "cfg", '{"a": {"b": 2}}', "--json", home=nbflow_home)
    assert nbflow("variables", "get", "token", home=nbflow_home).stdout == f"{SECRET}\n"
    assert json.loads(nbflow("variables", "get", "cfg", "--json", home=nbflow_home).stdout) == {"a": {"b": 2}}
    listed = nbflow("variables", "list", home=nbflow_home).stdout
    assert "token" in listed and "cfg" in listed and SECRET not in listed
    raw = sqlite3.connect(nbflow_home / "nbflow.db").execute("SELECT * FROM variable").fetchall()
    assert SECRET not in repr(raw)
    assert nbflow("variables", "get", "token", home=nbflow_home, env={"NBFLOW_VAR_TOKEN": "env"}).stdout == "env\n"
    assert nbflow("variables", "get", "nope", "--default", "d", home=nbflow_home).stdout == "d\n"
    assert "no variable 'nope'" in one_line(nbflow("variables", "get", "nope", home=nbflow_home, check=1))
    assert "--json is given but the value is not JSON" in one_line(
        nbflow("variables", "set", "bad", "{x", "--json", home=nbflow_home, check=1))
    nbflow("variables", "delete", "token", home=nbflow_home)
    assert "no variable 'token'" in one_line(nbflow("variables", "delete", "token", home=nbflow_home, check=1))


def test_wrong_key_and_bad_key_setting_are_one_line(nbflow_home: Path) -> None:
    nbflow("variables", "set", "token", SECRET, home=nbflow_home)
    other = {"NBFLOW_FERNET_KEY": Fernet.generate_key().decode()}
    line = one_line(nbflow("variables", "get", "token", home=nbflow_home, env=other, check=1))
    assert "cannot be decrypted with the Fernet key" in line and "NBFLOW_FERNET_KEY" in line
    line = one_line(nbflow("variables", "get", "token", home=nbflow_home, env={"NBFLOW_FERNET_KEY": "x"}, check=2))
    assert "setting 'fernet_key' = '***'" in line
    (nbflow_home / "fernet.key").chmod(0o640)
    assert "chmod 600" in one_line(nbflow("variables", "get", "token", home=nbflow_home, check=1))
    shown = nbflow("config", "show", home=nbflow_home, env=other).stdout
    assert other["NBFLOW_FERNET_KEY"] not in shown and "fernet_key = ***" in shown
