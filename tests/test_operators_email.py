"""``EmailOperator`` against a real SMTP server: To, Cc and Bcc reach the envelope (Bcc never a
header), files are attached, the templated fields are rendered, and a refused mail fails the task."""

from __future__ import annotations

from pathlib import Path

import pytest

from smtp_server import MailServer, smtp_server  # noqa: F401 (the fixture)
from nbflow import DAG
from nbflow.errors import InvalidOptionError
from nbflow.operators import EmailOperator


def test_a_mail_with_cc_bcc_and_files_arrives_once(smtp_server: MailServer, tmp_path: Path) -> None:
    report = tmp_path / "report.csv"
    report.write_text("day,total\n2024-01-02,6\n")
    with DAG("mailing", timezone="UTC") as d:
        EmailOperator(task_id="send", to="ops@example.com", cc=["lead@example.com"], bcc="audit@example.com",
                      subject="Report for {{ ds }}", html_content="<p>Total: <b>{{ params.total }}</b></p>",
                      files=[str(report)], params={"total": 6})
    run = d.test(logical_date="2024-01-02")
    assert run.state == "success"
    [mail] = smtp_server.mails()
    assert sorted(mail.rcpt_tos) == ["audit@example.com", "lead@example.com", "ops@example.com"]
    message = mail.message
    assert (message["To"], message["Cc"], message["Bcc"]) == ("ops@example.com", "lead@example.com", None)
    assert message["Subject"] == "Report for 2024-01-02"
    assert message.get_body(("html",)).get_content().strip() == "<p>Total: <b>6</b></p>"
    assert "Total: 6" in message.get_body(("plain",)).get_content()
    [attached] = list(message.iter_attachments())
    assert attached.get_filename() == "report.csv"
    assert attached.get_content() == "day,total\n2024-01-02,6\n"
    assert "mailed ops@example.com, lead@example.com and 1 in bcc" in Path(run.log_paths["send"]).read_text()


def test_a_mail_the_server_cannot_take_fails_the_task_naming_the_setting(nbflow_home: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBFLOW_SMTP_MAIL_FROM", "nbflow@example.com")
    monkeypatch.setenv("NBFLOW_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("NBFLOW_SMTP_PORT", "9")
    with DAG("nomail", timezone="UTC") as d:
        EmailOperator(task_id="send", to="ops@example.com", subject="s", html_content="x")
    run = d.test()
    assert run.task_states["send"] == "failed"
    assert "the SMTP server 127.0.0.1:9 (smtp_host, smtp_port) could not take the mail" in Path(run.log_paths["send"]).read_text()


def test_without_a_sender_the_task_says_which_setting(smtp_server: MailServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NBFLOW_SMTP_MAIL_FROM")
    with DAG("nosender", timezone="UTC") as d:
        EmailOperator(task_id="send", to="ops@example.com", subject="s", html_content="x")
    run = d.test()
    assert run.task_states["send"] == "failed"
    assert "set smtp_mail_from" in Path(run.log_paths["send"]).read_text()
    assert smtp_server.mails() == []


def test_bad_addresses_are_refused_when_the_task_is_built(nbflow_home: Path) -> None:
    with DAG("bad"):
        with pytest.raises(InvalidOptionError, match=r"task 'send': cc='lead'.*e-mail address"):
            EmailOperator(task_id="send", to="ops@example.com", cc="lead", subject="s", html_content="x")
        with pytest.raises(InvalidOptionError, match=r"task 'none': to=\[\]"):
            EmailOperator(task_id="none", to=[], subject="s", html_content="x")
        templated = EmailOperator(task_id="later", to="{{ params.who }}", subject="s", html_content="x")
    assert templated.to == "{{ params.who }}"
