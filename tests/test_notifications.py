"""Notifications through Apprise, received by a real HTTP server (``json://`` webhooks) and a real
SMTP server: each message arrives once, naming the DAG, the task, the run's logical date in the
DAG's zone, the error's last line and the end of the log; one that cannot be delivered is written
to the task's log and changes nothing else."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from http_service import Service, service  # noqa: F401 (the fixture)
from smtp_server import MailServer, smtp_server  # noqa: F401 (the fixture)
from nbflow import DAG, task
from nbflow.errors import ConfigError, InvalidOptionError
from nbflow.notifications import Notifier, local_time, run_url
from nbflow.operators import EmptyOperator
from nbflow.settings import load_settings

SEOUL_NINE = datetime.fromisoformat("2024-03-05T09:30:00+09:00")


def _hook(service: Service, path: str = "/hook") -> str:
    service.answer(path, (200, "ok"))
    return f"json://{service.host}:{service.port}{path}"


def _failing_dag(dag_id: str, **task_options: object) -> DAG:
    with DAG(dag_id, timezone="Asia/Seoul") as d:
        @task(task_id="load", **task_options)
        def load():
            print("reading the sales file")
            raise ValueError("the sales file is empty")

        load()
    return d


def test_a_failure_notifier_sends_one_message_naming_dag_task_local_time_error_log_and_link(
        nbflow_home: Path, service: Service) -> None:
    d = _failing_dag("sales", on_failure_callback=Notifier(_hook(service)))
    run = d.test(logical_date=SEOUL_NINE)
    assert run.state == "failed"
    [received] = service.requests_to("/hook")
    message = received.json()
    assert message["title"] == "[nbflow] sales.load failed (2024-03-05 09:30 KST (Asia/Seoul))"
    assert message["type"] == "failure"
    body = message["message"]
    assert "Task: load (try 1 of 1)" in body
    assert f"Run: test · 5 Mar 09:30 ({run.run_id})" in body  # readable, with the id beside it
    assert "Error: ValueError: the sales file is empty" in body
    assert f"Log: {run.task_instances['load'].log_path}" in body
    assert "reading the sales file" in body  # the log's tail
    assert f"http://localhost:8888/lab?nbflow-dag=sales&nbflow-run={run.run_id.replace('+', '%2B').replace(':', '%3A')}" in body


def test_a_run_failure_notifier_names_the_failed_tasks_tries_errors_and_logs(nbflow_home: Path, service: Service) -> None:
    """A DAG's own on_failure_callback is told of the run: which tasks failed, at which try, why,
    and where their logs are, not only "failed"."""
    with DAG("nightly", timezone="Asia/Seoul", on_failure_callback=Notifier(_hook(service, "/run"))) as d:
        @task(retries=1, retry_delay=0)
        def extract():
            raise KeyError("region")

        @task
        def fine():
            return 1

        @task
        def total(x):
            raise ZeroDivisionError("no rows to average")

        extract()
        total(fine())
    run = d.test(logical_date=SEOUL_NINE)
    assert run.state == "failed"
    [received] = service.requests_to("/run")
    message = received.json()
    assert message["title"] == "[nbflow] nightly failed: extract, total (2024-03-05 09:30 KST (Asia/Seoul))"
    body = message["message"]
    assert f"Run: test · 5 Mar 09:30 ({run.run_id})" in body
    assert "- extract (try 2): KeyError: 'region'" in body
    assert "- total (try 1): ZeroDivisionError: no rows to average" in body
    for task_id in ("extract", "total"):
        assert f"  log: {run.task_instances[task_id].log_path}" in body
    assert "fine" not in body


def test_run_label() -> None:
    from datetime import timezone
    from zoneinfo import ZoneInfo

    from nbflow.notifications import run_label

    when = datetime(2026, 12, 4, 1, 41, 1, tzinfo=timezone.utc)
    assert run_label("manual__2026-12-04T01:41:01+00:00", when, ZoneInfo("Europe/Berlin")) == "manual · 4 Dec 02:41"
    assert run_label("scheduled__2026-12-04T01:41:01+00:00", when, ZoneInfo("Asia/Seoul")) == "scheduled · 4 Dec 10:41"


def test_success_and_retry_notifiers_also_inside_a_list_of_callbacks(nbflow_home: Path, service: Service,
                                                                      tmp_path: Path) -> None:
    marker, seen = tmp_path / "tried", []
    with DAG("flaky", timezone="UTC") as d:
        @task(retries=1, retry_delay=0,
              on_retry_callback=Notifier(_hook(service, "/retry"), title="{{ task_id }} retry {{ try_number }}"),
              on_success_callback=[lambda context: seen.append(context["task"].task_id),
                                   Notifier(_hook(service, "/ok"), body="done {{ ds }}")])
        def flaky():
            if not marker.exists():
                marker.write_text("1")
                raise RuntimeError("first try fails")
            return 1

        flaky()
    assert d.test(logical_date="2024-01-02").state == "success"
    [retry] = service.requests_to("/retry")
    assert retry.json()["title"] == "flaky retry 1"
    [ok] = service.requests_to("/ok")
    assert ok.json()["message"].strip() == "done 2024-01-02"
    assert seen == ["flaky"]


def test_a_notifier_that_cannot_deliver_is_logged_and_the_task_stands(nbflow_home: Path, service: Service) -> None:
    good = _hook(service)
    with DAG("unreachable", timezone="UTC") as d:
        EmptyOperator(task_id="t", on_success_callback=Notifier("json://127.0.0.1:9/nobody", good))
    run = d.test()
    assert run.state == "success" and run.task_states["t"] == "success"
    log = Path(run.log_paths["t"]).read_text()
    assert "could not notify json://127.0.0.1:9/nobody" in log
    assert "the task's state stands" in log and "Traceback" not in log
    assert len(service.requests_to("/hook")) == 1  # the other target still got it


def test_a_malformed_target_is_refused_when_the_dag_is_built_naming_the_task_and_the_url(nbflow_home: Path) -> None:
    with DAG("typos"):
        with pytest.raises(InvalidOptionError, match=r"DAG 'typos', task 't': on_failure_callback='nosuch://x'.*"
                                                     r"knows no service 'nosuch://'"):
            EmptyOperator(task_id="t", on_failure_callback=[print, Notifier("nosuch://x")])
    with pytest.raises(InvalidOptionError, match=r"DAG 'bad_defaults': on_retry_callback='mailto://'.*from default_args"):
        DAG("bad_defaults", default_args={"on_retry_callback": Notifier("mailto://")})
    with pytest.raises(InvalidOptionError, match=r"DAG 'bad_dag': notify_on_success='hook'.*no scheme"):
        DAG("bad_dag", notify_on_success=["hook"])


def test_the_settings_notify_every_dag_and_a_dag_may_replace_them(nbflow_home: Path, service: Service,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBFLOW_NOTIFY_ON_FAILURE", _hook(service, "/global"))
    monkeypatch.setenv("NBFLOW_BASE_URL", "https://lab.example.com/")
    assert _failing_dag("everywhere").test(logical_date=SEOUL_NINE).state == "failed"
    [message] = service.requests_to("/global")
    assert "Error: ValueError: the sales file is empty" in message.json()["message"]
    assert "https://lab.example.com/lab?nbflow-dag=everywhere&" in message.json()["message"]

    with DAG("own", timezone="UTC", notify_on_failure=[], notify_on_success=[_hook(service, "/own")]) as d:
        EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
    assert d.test().state == "success"
    [run_message] = service.requests_to("/own")  # once per run, not per task
    assert run_message.json()["title"].startswith("[nbflow] own succeeded")
    silenced = _failing_dag("silenced")
    silenced.notify_on_failure = []
    silenced.test()
    assert len(service.requests_to("/global")) == 1


def test_notify_settings_are_checked_when_they_load(nbflow_home: Path) -> None:
    with pytest.raises(ConfigError, match=r"notify_on_retry.*knows no service 'nosuch://'.*NBFLOW_NOTIFY_ON_RETRY"):
        load_settings(env={"NBFLOW_HOME": str(nbflow_home), "NBFLOW_NOTIFY_ON_RETRY": "json://ok/x nosuch://x"})
    (nbflow_home / "nbflow.toml").write_text('notify_on_failure = ["json://a/hook", "slack://T1/B1/C1"]\n')
    assert load_settings(env={"NBFLOW_HOME": str(nbflow_home)}).notify_on_failure == ("json://a/hook", "slack://T1/B1/C1")
    with pytest.raises(ConfigError, match="smtp_ssl and smtp_starttls"):
        load_settings(env={"NBFLOW_HOME": str(nbflow_home), "NBFLOW_SMTP_SSL": "1"})


def test_email_on_failure_mails_the_task_s_addresses_through_smtp(smtp_server: MailServer) -> None:
    d = _failing_dag("mailed", email=["ops@example.com", "lead@example.com"], retries=0)
    run = d.test(logical_date=SEOUL_NINE)
    assert run.state == "failed"
    [mail] = smtp_server.mails()
    assert f"Run: test · 5 Mar 09:30 ({run.run_id})" in mail.text() and "Task: load (try 1 of 1)" in mail.text()
    assert f"Log: {run.task_instances['load'].log_path}" in mail.text()
    assert sorted(mail.rcpt_tos) == ["lead@example.com", "ops@example.com"]
    assert mail.mail_from == "nbflow@example.com"
    assert mail.message["Subject"] == "[nbflow] mailed.load failed (2024-03-05 09:30 KST (Asia/Seoul))"
    assert "Error: ValueError: the sales file is empty" in mail.text()


def test_email_on_retry_and_its_flags(smtp_server: MailServer, tmp_path: Path) -> None:
    marker = tmp_path / "tried"
    with DAG("retried", timezone="UTC", default_args={"email": "ops@example.com", "email_on_failure": False}) as d:
        @task(retries=1, retry_delay=0)
        def once_more():
            if not marker.exists():
                marker.write_text("1")
                raise RuntimeError("try again")

        once_more()
        quiet = EmptyOperator(task_id="quiet", email_on_retry=False)
    assert quiet.email == "ops@example.com"
    assert d.test().state == "success"
    [mail] = smtp_server.mails()
    assert "once_more up for retry" in mail.message["Subject"]
    assert "Error: RuntimeError: try again" in mail.text()


def test_an_email_that_cannot_be_sent_is_logged_and_the_task_stands(nbflow_home: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBFLOW_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("NBFLOW_SMTP_PORT", "9")
    monkeypatch.setenv("NBFLOW_SMTP_MAIL_FROM", "nbflow@example.com")
    run = _failing_dag("nomail", email="ops@example.com").test()
    assert run.state == "failed"
    log = Path(run.log_paths["load"]).read_text()
    assert "ValueError: the sales file is empty" in log
    assert "could not notify ops@example.com: the SMTP server 127.0.0.1:9" in log


def test_an_address_that_is_not_one_is_refused(nbflow_home: Path) -> None:
    with DAG("addresses"):
        with pytest.raises(InvalidOptionError, match=r"task 't': email='ops'.*e-mail address"):
            EmptyOperator(task_id="t", email="ops")


def test_local_time_and_link() -> None:
    from zoneinfo import ZoneInfo

    assert local_time(SEOUL_NINE, ZoneInfo("UTC")) == "2024-03-05 00:30 UTC"
    assert local_time(SEOUL_NINE, ZoneInfo("Europe/Paris")) == "2024-03-05 01:30 CET (Europe/Paris)"
    assert run_url("http://h/base/", "d", "manual__x") == "http://h/base/lab?nbflow-dag=d&nbflow-run=manual__x"


def test_a_mailto_target_is_delivered_by_apprise_to_the_smtp_server(smtp_server: MailServer) -> None:
    target = (f"mailto://{smtp_server.host}:{smtp_server.port}?from=bot@example.com&to=ops@example.com"
              "&mode=insecure")
    d = _failing_dag("apprise_mail", on_failure_callback=Notifier(target))
    assert d.test(logical_date=SEOUL_NINE).state == "failed"
    [mail] = smtp_server.mails()
    assert (mail.mail_from, mail.rcpt_tos) == ("bot@example.com", ["ops@example.com"])
    assert mail.message["Subject"] == "[nbflow] apprise_mail.load failed (2024-03-05 09:30 KST (Asia/Seoul))"
    assert "Error: ValueError: the sales file is empty" in mail.text()


def test_a_slow_target_does_not_hold_up_the_host(nbflow_home: Path, service: Service) -> None:
    import threading

    from nbflow.engine import controls
    from nbflow.engine.scheduler import Scheduler
    from nbflow.notifications import wait_sent
    from nbflow.store import Store
    from waiting import wait_for

    gate = threading.Event()
    service.answer("/slow", (200, lambda received: (gate.wait(60), "ok")[1]))
    with DAG("slow_hook", timezone="UTC") as d:
        EmptyOperator(task_id="a", on_success_callback=Notifier(f"json://{service.host}:{service.port}/slow"))
        EmptyOperator(task_id="b")
    settings = load_settings()
    store = Store.open(settings)
    host = Scheduler(settings=settings, dags=[d], executor="thread", create_runs=False)
    try:
        run_id = controls.trigger(d, store=store)
        # the run ends while the webhook is still answering: the host's loop did not wait for it
        wait_for(lambda: (host.tick(), store.get_run("slow_hook", run_id)["state"] == "success")[1],
                 timeout=60, what="the run to end while its notification is still being sent")
        wait_for(lambda: service.requests_to("/slow"), timeout=30, what="the webhook to be called")
        assert not wait_sent(0)  # still being sent, after the run ended
        gate.set()
    finally:
        gate.set()
        host.close(grace=30)
        store.close()
    assert "nbflow: on_success_callback sends Notifier(json://" in Path(
        store.get_task_instance("slow_hook", run_id, "a")["log_path"]).read_text()
