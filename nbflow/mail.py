"""Sending e-mail through the SMTP settings (``smtp_host``, ``smtp_port``, ``smtp_starttls``,
``smtp_ssl``, ``smtp_user``, ``smtp_password``, ``smtp_mail_from``, ``smtp_timeout``).

The standard library's ``smtplib`` and ``email.message`` rather than Apprise's ``mailto://``:
``EmailOperator`` needs what a notification target has no words for (Cc and Bcc kept apart,
attached files, an HTML body with a plain-text alternative), and the task options ``email_on_failure``
/ ``email_on_retry`` then go out the same way, through the one SMTP server the settings name.
Notification targets (``mailto://`` included) go through Apprise in :mod:`nbflow.notifications`.
"""

from __future__ import annotations

import html
import mimetypes
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from nbflow.errors import NotificationError

if TYPE_CHECKING:
    from nbflow.settings import Settings

_ADDRESS = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+$")


def addresses(value: Any) -> list[str] | None:
    """``value`` (an address, several separated by commas or semicolons, or a list) as a list of
    addresses; None when one of them is not an address."""
    if value is None:
        return []
    if isinstance(value, str):
        value = re.split(r"[,;]", value)
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        return None
    found = [item.strip() for item in value if item.strip()]
    return found if all(_ADDRESS.match(item) for item in found) else None


def build_message(
    settings: Settings, to: Iterable[str], subject: str, html_content: str, *,
    cc: Iterable[str] = (), files: Iterable[str | Path] = (),
) -> EmailMessage:
    """The message as it is sent: HTML with a plain-text alternative, the files attached. Bcc is
    never a header: its addresses are only envelope recipients."""
    message = EmailMessage()
    message["From"] = settings.smtp_mail_from
    message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    message["Subject"] = " ".join(subject.split())  # a header holds no line breaks
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=settings.smtp_mail_from.rpartition("@")[2] or None)
    message.set_content(_plain(html_content))
    message.add_alternative(html_content, subtype="html")
    for file in files:
        path = Path(file)
        kind, _ = mimetypes.guess_type(path.name)
        main, sub = (kind or "application/octet-stream").split("/", 1)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise NotificationError(list(to), f"the file to attach {str(path)!r} cannot be read "
                                              f"({exc.strerror or exc})") from None
        message.add_attachment(data, maintype=main, subtype=sub, filename=path.name)
    return message


def _plain(content: str) -> str:
    text = re.sub(r"<br\s*/?>|</p>|</div>|</tr>|</h\d>", "\n", content, flags=re.I)
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def send_email(
    settings: Settings, to: Iterable[str], subject: str, html_content: str, *,
    cc: Iterable[str] = (), bcc: Iterable[str] = (), files: Iterable[str | Path] = (),
) -> None:
    """Send one message to ``to``, ``cc`` and ``bcc``, or raise :class:`NotificationError` saying
    which setting to look at. Errors of ``smtplib`` and the network are translated here, once."""
    to, cc, bcc = list(to), list(cc), list(bcc)
    everyone = to + cc + bcc
    if not settings.smtp_mail_from:
        raise NotificationError(everyone, "no sender: set smtp_mail_from in nbflow.toml (or NBFLOW_SMTP_MAIL_FROM)")
    if not everyone:
        raise NotificationError([], "no recipient: give at least one address in to, cc or bcc")
    message = build_message(settings, to, subject, html_content, cc=cc, files=files)
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    try:
        if settings.smtp_ssl:
            client: smtplib.SMTP = smtplib.SMTP_SSL(settings.smtp_host, settings.smtp_port,
                                                    timeout=settings.smtp_timeout,
                                                    context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout)
        with client:
            if settings.smtp_starttls and not settings.smtp_ssl:
                client.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                client.login(settings.smtp_user, settings.smtp_password)
            refused = client.send_message(message, to_addrs=everyone)
    except smtplib.SMTPNotSupportedError:
        raise NotificationError(everyone, f"the SMTP server {where} offers no STARTTLS: set smtp_starttls = false "
                                          "(or smtp_ssl = true for a TLS port)") from None
    except smtplib.SMTPAuthenticationError as exc:
        raise NotificationError(everyone, f"the SMTP server {where} refused the login of smtp_user "
                                          f"{settings.smtp_user!r} ({exc.smtp_code}): check smtp_user and smtp_password") from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise NotificationError(everyone, f"the SMTP server {where} refused every recipient "
                                          f"({', '.join(exc.recipients)})") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise NotificationError(everyone, f"the SMTP server {where} (smtp_host, smtp_port) could not take the "
                                          f"mail: {exc}") from None
    if refused:
        raise NotificationError(sorted(refused), f"the SMTP server {where} refused these recipients; the others got it")
