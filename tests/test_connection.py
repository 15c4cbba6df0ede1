"""Connection and Variable as tasks use them: URIs, the environment before the store, templates."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nbflow import DAG, Connection, Variable
from nbflow.errors import ConnectionNotFoundError, InvalidConnectionError, InvalidRequestError, VariableNotFoundError
from nbflow.templates import build_context, render_value

URI = "postgresql://us%40er:p%3Ass%2Fw@db.example:5432/sales?sslmode=require&application_name=nb"


@pytest.fixture
def home_on(store_url: str, nbflow_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current settings' store on each backend."""
    monkeypatch.setenv("NBFLOW_DATABASE_URL", store_url)
    return nbflow_home


def test_uri_is_read_with_quoted_credentials_and_written_back() -> None:
    conn = Connection.from_uri("db", URI)
    assert (conn.conn_type, conn.host, conn.port, conn.schema) == ("postgresql", "db.example", 5432, "sales")
    assert (conn.login, conn.password) == ("us@er", "p:ss/w")
    assert conn.extra_dejson == {"sslmode": "require", "application_name": "nb"}
    assert Connection.from_uri("db", conn.get_uri()) == conn
    nested = Connection("api", "http_api", host="api.example", extra={"retries": 3, "headers": {"a": "b"}})
    back = Connection.from_uri("api", nested.get_uri())
    assert back == nested and back.conn_type == "http_api" and back.extra_dejson["retries"] == 3
    assert "p:ss/w" not in repr(conn)


@pytest.mark.parametrize(("uri", "match"), [
    ("db.example:5432", "has no type://"),
    ("postgres://h:notaport/db", "not a usable URI"),
    ("postgres://h:99999/db", "not a usable URI"),
    ("http://h/?__extra__={bad", "not valid JSON"),
    ("http://h/?__extra__=[1]&x=2", "__extra__ and other query parameters"),
])
def test_bad_uris_are_refused_naming_the_connection(uri: str, match: str) -> None:
    with pytest.raises(InvalidConnectionError, match=f"connection 'db'.*{match}"):
        Connection.from_uri("db", uri)


def test_bad_uri_error_hides_the_password() -> None:
    with pytest.raises(InvalidConnectionError) as caught:
        Connection.from_uri("db", "postgres://ann:hunter2@h:notaport/db")
    assert "hunter2" not in str(caught.value)


def test_store_then_environment_which_wins(home_on: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConnectionNotFoundError, match="NBFLOW_CONN_DB"):
        Connection.get("db")
    from nbflow.store import Store

    with Store.open() as store:
        store.set_connection("db", **Connection.from_uri("db", URI).fields())
    assert Connection.get("db").password == "p:ss/w"
    monkeypatch.setenv("NBFLOW_CONN_DB", "http://env-host:8080")
    from_env = Connection.get("db")
    assert (from_env.conn_type, from_env.host, from_env.port, from_env.password) == ("http", "env-host", 8080, None)
    monkeypatch.setenv("NBFLOW_CONN_DB", "garbage")
    with pytest.raises(InvalidConnectionError, match="environment variable NBFLOW_CONN_DB"):
        Connection.get("db")


def test_variables_get_set_json_default_and_environment(home_on: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(VariableNotFoundError, match="no variable 'x'"):
        Variable.get("x")
    assert Variable.get("x", default_var=None) is None
    Variable.set("x", {"field": [1, 2]}, serialize_json=True)
    assert Variable.get("x", deserialize_json=True) == {"field": [1, 2]}
    assert Variable.get("x") == '{"field": [1, 2]}'
    Variable.set("plain", "not json")
    with pytest.raises(InvalidRequestError, match="variable 'plain'.*not valid JSON"):
        Variable.get("plain", deserialize_json=True)
    monkeypatch.setenv("NBFLOW_VAR_PLAIN", "from env")
    assert Variable.get("plain") == "from env"
    with pytest.raises(InvalidRequestError, match="cannot be written as JSON"):
        Variable.set("bad", {1, 2}, serialize_json=True)
    Variable.delete("x")
    with pytest.raises(VariableNotFoundError):
        Variable.delete("x")


def _context(dag: DAG) -> dict:
    from datetime import UTC, datetime

    now = datetime(2024, 6, 1, tzinfo=UTC)
    task = next(iter(dag.task_dict.values()))
    return build_context(dag=dag, task=task, run_id="r", logical_date=now, data_interval_start=now,
                         data_interval_end=now, conf=None, ti=None)


def test_templates_read_connections_and_variables_only_when_named(home_on: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbflow.operators import EmptyOperator

    with DAG("t", schedule=None, start_date="2024-01-01") as dag:
        EmptyOperator(task_id="e")
    # a template that names neither costs nothing: no store, no key file
    reachable = os.environ["NBFLOW_DATABASE_URL"]
    monkeypatch.setenv("NBFLOW_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    context = _context(dag)
    assert render_value("{{ ds }}", context) == "2024-06-01"
    assert not (home_on / "fernet.key").exists()
    monkeypatch.setenv("NBFLOW_CONN_API", "https://ann:pw@api.example:8443/v1?timeout=5")
    monkeypatch.setenv("NBFLOW_VAR_CFG", '{"region": "eu", "n": 3}')
    monkeypatch.setenv("NBFLOW_VAR_NAME", "report")
    text = "{{ conn.api.host }}:{{ conn.api.port }} {{ conn.api.extra_dejson.timeout }} {{ var.value.name }} {{ var.json.cfg.region }}"
    assert render_value(text, _context(dag)) == "api.example:8443 5 report eu"
    monkeypatch.setenv("NBFLOW_DATABASE_URL", reachable)
    assert render_value("{{ var.value.get('nothing', 'fallback') }}", _context(dag)) == "fallback"
    with pytest.raises(ConnectionNotFoundError, match="no connection 'missing'"):
        render_value("{{ conn.missing.host }}", _context(dag))


def test_a_task_reads_a_stored_connection_in_its_template(home_on: Path) -> None:
    from nbflow.operators import BashOperator

    Connection.from_uri("db", URI)  # parses
    from nbflow.store import Store

    with Store.open() as store:
        store.set_connection("db", **Connection.from_uri("db", URI).fields())
    Variable.set("greeting", "hello")
    with DAG("uses_conn", schedule=None, start_date="2024-01-01") as dag:
        BashOperator(task_id="echo", bash_command="echo {{ var.value.greeting }} {{ conn.db.login }}@{{ conn.db.host }}")
    run = dag.test()
    assert run.state == "success", run.task_states
    assert run.outputs["echo"] == "hello us@er@db.example"
