"""``nbflow doctor`` run as a user runs it, in a temporary NBFLOW_HOME: each line ok or the fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from cli.conftest import SYNTAX, nbflow
from http_service import Service, service  # noqa: F401 (the fixture)
from smtp_server import MailServer, smtp_server  # noqa: F401 (the fixture)


def _lines(result: subprocess.CompletedProcess[str], name: str) -> list[str]:
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return [line for line in result.stdout.splitlines() if line.split(":", 1)[0].split(None, 1)[-1] == name]


def test_a_fresh_home_is_told_to_run_db_upgrade(nbflow_home: Path) -> None:
    result = nbflow("doctor", home=nbflow_home, check=1)
    [store] = _lines(result, "store")
    assert store.startswith("FAIL") and "run `nbflow db upgrade`" in store, result.stdout
    assert not (nbflow_home / "nbflow.db").exists()  # doctor looks, it does not create
    [dags] = _lines(result, "dags")
    assert "does not exist" in dags and f"mkdir -p {nbflow_home / 'dags'}" in dags
    assert result.stdout.splitlines()[-1].endswith("checks failed")


def test_a_broken_dag_file_is_named(home: Path) -> None:
    nbflow("db", "upgrade", home=home)
    broken = home / "dags" / "sales.py"
    broken.write_text(SYNTAX)
    result = nbflow("doctor", home=home, check=1)
    dags = _lines(result, "dags")
    assert any(line.startswith("FAIL") and str(broken) in line and "SyntaxError" in line for line in dags), result.stdout
    assert any(line.startswith("ok") and "(etl)" in line for line in dags), result.stdout


def test_a_migrated_store_with_a_good_dag_is_ok_and_no_scheduler_says_how_to_start_one(home: Path) -> None:
    nbflow("db", "upgrade", home=home)
    result = nbflow("doctor", home=home, check=1)
    [store] = _lines(result, "store")
    assert store.startswith("ok") and "schema version" in store, result.stdout
    [dags] = _lines(result, "dags")
    assert dags.startswith("ok") and "1 DAG loaded" in dags and "(etl)" in dags
    [scheduler] = _lines(result, "scheduler")
    assert scheduler.startswith("FAIL") and "`nbflow scheduler`" in scheduler
    for name in ("disk", "kernels", "jupyter server extension", "jupyterlab extension"):
        [line] = _lines(result, name)
        assert line.startswith("ok"), result.stdout
    assert result.stdout.splitlines()[-1] == "1 check failed"


def test_a_running_scheduler_makes_every_check_pass(home: Path) -> None:
    nbflow("db", "upgrade", home=home)
    env = {**os.environ, "NBFLOW_HOME": str(home)}
    daemon = subprocess.Popen([sys.executable, "-m", "nbflow", "scheduler"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:  # the daemon registers its host when it starts
            result = nbflow("doctor", home=home, check=None)
            if result.returncode == 0 or time.monotonic() > deadline or daemon.poll() is not None:
                break
            time.sleep(0.5)
        [scheduler] = _lines(result, "scheduler")
        assert scheduler.startswith("ok") and "daemon" in scheduler and f"pid {daemon.pid}" in scheduler, result.stdout
        assert result.returncode == 0 and result.stdout.splitlines()[-1] == "everything looks right", result.stdout
        send = nbflow("doctor", "--send-test", home=home)
        [line] = _lines(send, "send-test")
        assert line.startswith("ok") and "nothing to send to" in line
    finally:
        daemon.terminate()
        daemon.communicate(timeout=60)  # closes its stderr pipe


def test_smtp_and_webhook_targets_are_checked_and_send_test_delivers(
    home: Path, smtp_server: MailServer, service: Service,
) -> None:
    service.answer("/hook", (200, "ok"))
    hook, nowhere = f"json://127.0.0.1:{service.port}/hook", "json://127.0.0.1:1/nowhere"
    env = {"NBFLOW_NOTIFY_ON_FAILURE": f"{hook} {nowhere}"}
    result = nbflow("doctor", home=home, check=1, env=env)
    [smtp] = _lines(result, "smtp")
    assert smtp.startswith("ok") and f"127.0.0.1:{smtp_server.port} answers" in smtp, result.stdout
    [reachable, unreachable] = _lines(result, "notify")
    assert reachable.startswith("ok") and f"127.0.0.1:{service.port} accepts connections" in reachable
    assert unreachable.startswith("FAIL") and "cannot connect to 127.0.0.1:1" in unreachable
    assert smtp_server.mails() == [] and service.requests_to("/hook") == []  # checking sends nothing

    sent = nbflow("doctor", "--send-test", home=home, check=1, env=env)
    lines = _lines(sent, "send-test")
    assert any(line.startswith("ok") and "/hook: test message sent" in line for line in lines), sent.stdout
    assert any(line.startswith("FAIL") and "/nowhere" in line for line in lines), sent.stdout
    assert any(line.startswith("ok") and "test email sent to nbflow@example.com" in line for line in lines)
    [request] = service.requests_to("/hook")
    assert request.json()["title"] == "nbflow doctor: test message"
    [mail] = smtp_server.mails()
    assert mail.rcpt_tos == ["nbflow@example.com"] and mail.message["Subject"] == "nbflow doctor: test message"


def test_an_smtp_server_that_does_not_answer_says_which_settings(home: Path) -> None:
    env = {"NBFLOW_SMTP_HOST": "127.0.0.1", "NBFLOW_SMTP_PORT": "1"}
    result = nbflow("doctor", home=home, check=1, env=env)
    [smtp] = _lines(result, "smtp")
    assert smtp.startswith("FAIL") and "127.0.0.1:1" in smtp and "check smtp_host and smtp_port" in smtp


def test_a_notebook_task_whose_kernel_has_no_spec_is_named(home: Path) -> None:
    nbflow("db", "upgrade", home=home)
    notebook = home / "report.ipynb"
    notebook.write_text(json.dumps({"cells": [], "metadata": {"kernelspec": {"name": "julia-1.9"}},
                                    "nbformat": 4, "nbformat_minor": 5}))
    (home / "dags" / "reports.py").write_text(
        "from nbflow import DAG\n"
        "from nbflow.operators import NotebookOperator\n"
        "with DAG('reports', timezone='UTC') as d:\n"
        f"    NotebookOperator(task_id='weekly', notebook={str(notebook)!r})\n"
    )
    result = nbflow("doctor", home=home, check=1)
    [kernels] = _lines(result, "kernels")
    assert kernels.startswith("FAIL") and "julia-1.9 (for reports.weekly)" in kernels, result.stdout
    assert "python3" in kernels  # what is there
