"""``EmailOperator``: a task that sends one e-mail through the SMTP settings."""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

from nbflow.errors import InvalidOptionError
from nbflow.operators.base import BaseOperator


def _templated(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return any(_templated(item) for item in value)
    return isinstance(value, str) and ("{{" in value or "{%" in value)


class EmailOperator(BaseOperator):
    """Sends ``html_content`` (with a plain-text alternative) to ``to``, ``cc`` and ``bcc`` (each an
    address, several separated by commas, or a list), with ``files`` attached, through the
    ``smtp_*`` settings. ``to``, ``subject``, ``html_content``, ``files``, ``cc`` and ``bcc`` are
    templated. A mail the server does not take fails the task, naming the setting to look at."""

    template_fields: ClassVar[Sequence[str]] = ("to", "subject", "html_content", "files", "cc", "bcc")
    kind: ClassVar[str] = "email"

    def __init__(
        self,
        *,
        to: str | list[str],
        subject: str,
        html_content: str,
        files: list[str] | None = None,
        cc: str | list[str] | None = None,
        bcc: str | list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for name, value in (("to", to), ("cc", cc), ("bcc", bcc)):
            _check_addresses(name, value, self.dag_id, self.task_id)
        if not isinstance(subject, str):
            raise InvalidOptionError("subject", subject, "give the subject as text", self.dag_id, self.task_id)
        if not isinstance(html_content, str):
            raise InvalidOptionError("html_content", html_content, "give the body as text (HTML)", self.dag_id,
                                     self.task_id)
        if files is not None and (not isinstance(files, (list, tuple)) or not all(isinstance(f, str) for f in files)):
            raise InvalidOptionError("files", files, "give a list of file paths to attach", self.dag_id, self.task_id)
        self.to, self.subject, self.html_content = to, subject, html_content
        self.files, self.cc, self.bcc = list(files or []), cc, bcc

    def execute(self, context: dict[str, Any]) -> None:
        from nbflow.mail import send_email
        from nbflow.settings import get_settings

        recipients = {name: _check_addresses(name, getattr(self, name), self.dag_id, self.task_id)
                      for name in ("to", "cc", "bcc")}
        send_email(get_settings(), recipients["to"], self.subject, self.html_content,
                   cc=recipients["cc"], bcc=recipients["bcc"], files=self.files)
        hidden = f" and {len(recipients['bcc'])} in bcc" if recipients["bcc"] else ""
        print(f"nbflow: mailed {', '.join(recipients['to'] + recipients['cc'])}{hidden}")


def _check_addresses(name: str, value: Any, dag_id: str | None, task_id: str | None) -> list[str]:
    """The addresses of ``to``, ``cc`` or ``bcc``; a template is checked once rendered."""
    from nbflow.mail import addresses

    if _templated(value):
        return []
    found = addresses(value)
    if found is None or (name == "to" and not found):
        raise InvalidOptionError(name, value, "give an e-mail address, several separated by commas, or a list of them",
                                 dag_id, task_id)
    return found
