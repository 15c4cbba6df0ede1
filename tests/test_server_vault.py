"""The REST API's connections and variables, on a real Jupyter server: secrets never leave it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jupyter_api import *  # noqa: F403 (the test server's fixtures)
from jupyter_api import Api
from nbflow import Connection, Variable
from nbflow.store import Store

SECRET = "pa55-Wörd-9f3"
TOKEN = "tok-extra-77a1"


def test_connections_are_created_listed_without_secrets_and_deleted(api: Api, server_env: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    created = api.post("connections", body={"conn_id": "my_db", "uri": f"postgresql://ann:{SECRET}@db.example:5432/sales"},
                       expect=201)
    assert created["connection"]["has_password"] is True and created["replaced"] is False
    api.post("connections", body={"conn_id": "my_api", "conn_type": "http", "host": "api.example", "port": 8080,
                                  "extra": {"X-Api-Key": TOKEN}, "description": "the API"}, expect=201)
    monkeypatch.setenv("NBFLOW_CONN_FROM_ENV", f"http://bob:{SECRET}@env.example")
    response = api.request("GET", "connections")
    assert SECRET.encode() not in response.body and TOKEN.encode() not in response.body
    assert SECRET not in response.body.decode("utf-8") and TOKEN not in json.dumps(json.loads(response.body))
    listed = {c["conn_id"]: c for c in json.loads(response.body)["connections"]}
    assert set(listed) == {"my_db", "my_api", "from_env"}
    assert listed["my_db"] == {"conn_id": "my_db", "conn_type": "postgresql", "host": "db.example", "schema": "sales",
                               "login": "ann", "port": 5432, "description": None, "has_password": True,
                               "has_extra": False, "source": "store"}
    assert (listed["my_api"]["has_password"], listed["my_api"]["has_extra"], listed["my_api"]["port"]) == (False, True, 8080)
    assert listed["from_env"]["source"] == "NBFLOW_CONN_FROM_ENV" and listed["from_env"]["has_password"] is True
    # what was stored is what a task gets
    assert Connection.get("my_db").password == SECRET and Connection.get("my_api").extra_dejson == {"X-Api-Key": TOKEN}
    # replacing says so, and never echoes the secret
    again = api.request("POST", "connections", body={"conn_id": "my_db", "uri": f"postgresql://ann:{SECRET}@db2.example/s"},
                        expect=201)
    assert json.loads(again.body)["replaced"] is True and SECRET.encode() not in again.body
    assert api.request("DELETE", "connections", "my_db").code == 200
    assert [c["conn_id"] for c in api.get("connections")["connections"]] == ["from_env", "my_api"]
    missing = api.error("DELETE", "connections", "my_db", expect=404)
    assert missing["error"] == "ConnectionNotFoundError" and "my_db" in missing["message"]


@pytest.mark.parametrize(("body", "words"), [
    ({"conn_id": "x", "uri": f"postgres://ann:{SECRET}@h:notaport/db"}, "not a usable URI"),
    ({"conn_id": "x", "uri": "db.example:5432"}, "has no type://"),
    ({"conn_id": "bad id!", "conn_type": "http"}, "is not usable"),
    ({"conn_id": "x", "host": "h"}, "neither uri nor conn_type"),
    ({"conn_id": "x", "conn_type": "http", "port": 99999}, "not a port number"),
    ({"conn_id": "x", "conn_type": "http", "extra": "{oops"}, "not valid JSON"),
    ({"conn_id": "x", "conn_type": "http", "hots": "h"}, "'hots' is not a connection field"),
    ({"conn_id": "x", "uri": "http://h", "password": SECRET}, "uri and password are both given"),
    ({"conn_id": "x", "conn_type": "http", "login": ["a"]}, "its login is a list"),
])
def test_bad_connections_are_one_line_400s(api: Api, server_env: Path, body: dict[str, object], words: str) -> None:
    error = api.error("POST", "connections", body=body, expect=400)
    assert words in error["message"] and "\n" not in error["message"], error
    assert SECRET not in json.dumps(error)
    assert api.get("connections")["connections"] == []


def test_variables_listed_by_key_and_read_one_by_one(api: Api, server_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    api.post("variables", body={"key": "region", "value": "eu-west", "description": "where"}, expect=201)
    api.post("variables", body={"key": "limits", "value": {"rows": 1000}}, expect=201)
    monkeypatch.setenv("NBFLOW_VAR_FROM_ENV", "env-value")
    listing = api.request("GET", "variables")
    assert b"eu-west" not in listing.body and b"1000" not in listing.body and b"env-value" not in listing.body
    listed = json.loads(listing.body)["variables"]
    assert [(v["key"], v["description"], v["source"]) for v in listed] == [
        ("from_env", None, "NBFLOW_VAR_FROM_ENV"), ("limits", None, "store"), ("region", "where", "store")]
    assert api.get("variables", "region") == {"key": "region", "value": "eu-west", "source": "store"}
    assert api.get("variables", "from_env")["value"] == "env-value"
    assert Variable.get("limits", deserialize_json=True) == {"rows": 1000}
    assert api.request("DELETE", "variables", "region").code == 200
    assert api.error("GET", "variables", "region", expect=404)["error"] == "VariableNotFoundError"
    assert api.error("DELETE", "variables", "region", expect=404)["error"] == "VariableNotFoundError"
    for body, words in [({"key": "bad key", "value": "v"}, "is not usable"), ({"key": "k"}, "no value is given"),
                        ({"key": "k", "value": "v", "secret": 1}, "'secret' is not a variable field"),
                        ({"key": "k", "value": "v", "description": 5}, "description is a int")]:
        assert words in api.error("POST", "variables", body=body, expect=400)["message"]


def test_every_route_needs_a_token(api: Api, server_env: Path) -> None:
    with Store.open() as store:
        store.set_connection("keep", conn_type="http", host="h", password=SECRET)
        store.set_variable("kept", SECRET)
    calls = [("GET", ("connections",), None), ("POST", ("connections",), {"conn_id": "new", "conn_type": "http"}),
             ("DELETE", ("connections", "keep"), None), ("GET", ("variables",), None),
             ("POST", ("variables",), {"key": "new", "value": "v"}), ("GET", ("variables", "kept"), None),
             ("DELETE", ("variables", "kept"), None)]
    for method, parts, body in calls:
        for headers in ({"Authorization": ""}, {"Authorization": "token not-the-token"}):
            response = api.request(method, *parts, headers=headers, expect=None,
                                   body=json.dumps(body) if body is not None else None)
            assert response.code == 403, (method, parts, response.code, response.body[:300])
            assert SECRET.encode() not in response.body and b"keep" not in response.body
    with Store.open() as store:
        assert [c["conn_id"] for c in store.list_connections()] == ["keep"]
        assert store.get_variable("kept") == SECRET and [v["key"] for v in store.list_variables()] == ["kept"]
