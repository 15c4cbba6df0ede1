"""Notifications: telling people how a task or a run ended, through Apprise.

``Notifier("json://host/hook", "mailto://user:pass@host", title=..., body=...)`` is a callback
(``on_failure_callback=Notifier(...)``, alone or in a list); the settings ``notify_on_failure``,
``notify_on_success`` and ``notify_on_retry`` (and a DAG's arguments of the same names) add one for
every task; ``email`` with ``email_on_failure`` / ``email_on_retry`` mail the same message through
the SMTP settings. Title and body are Jinja templates over the task's context plus the names in
:func:`message_context` (``dag_id``, ``task_id``, ``run``: "manual · 4 Dec 02:41", ``when``: the
logical date in the DAG's zone, ``error``, ``log_path``, ``log_tail``, ``failed_tasks`` of a failed
run, ``url``: the run in JupyterLab).

A notification that cannot be delivered raises :class:`NotificationError`; the engine writes it to
the task's log and the task and its run go on as if nothing had been sent.
"""

from __future__ import annotations

import html
import logging
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any, Callable, Iterable
from urllib.parse import urlencode

from nbflow.errors import InvalidOptionError, NotificationError
from nbflow.notifytargets import as_targets, masked, target_problem

if TYPE_CHECKING:
    from nbflow.settings import Settings

#: the callback option of each task event, and the word messages use for it
EVENTS = {"on_failure_callback": "failed", "on_retry_callback": "up for retry", "on_success_callback": "succeeded"}
#: the options and settings that name targets, by event
NOTIFY_OPTIONS = ("notify_on_failure", "notify_on_success", "notify_on_retry")
#: lines of the task's log a message carries
LOG_TAIL_LINES = 20

DEFAULT_TITLE = ("[nbflow] {{ dag_id }}{% if task_id %}.{{ task_id }}{% endif %} {{ event }}"
                 "{% if not task_id and failed_names %}: {{ failed_names }}{% endif %}"
                 " ({{ when }})")
DEFAULT_BODY = """\
DAG: {{ dag_id }}
Run: {{ run }} ({{ run_id }}), logical date {{ when }}
{% if task_id %}Task: {{ task_id }}{% if try_number %} (try {{ try_number }}{% if max_tries %} of {{ max_tries }}{% endif %}){% endif %}
{% endif %}State: {{ event }}
{% if error %}Error: {{ error }}
{% endif %}{% if log_path %}Log: {{ log_path }}
{% endif %}{% for failed in failed_tasks %}{% if loop.first %}Failed tasks:
{% endif %}- {{ failed.task_id }} (try {{ failed.try_number }}): {{ failed.error_line or "see its log" }}{% if failed.log_path %}
  log: {{ failed.log_path }}{% endif %}
{% endfor %}{% if log_tail %}
Last lines of the log:
{{ log_tail }}
{% endif %}
Open in JupyterLab: {{ url }}
"""


def check_targets(value: Any, option: str, dag_id: str | None = None, task_id: str | None = None,
                  via: str = "") -> list[str]:
    """``value`` (one Apprise URL or a list) as a list, or :class:`InvalidOptionError` naming the
    DAG, the task, the option and the URL that cannot be used."""
    targets = as_targets(value)
    if targets is None:
        raise InvalidOptionError(option, value, "give Apprise URLs as a list of texts, such as "
                                 "['json://host/hook', 'mailto://user:pass@example.com']", dag_id, task_id, via)
    for url in targets:
        problem = target_problem(url)
        if problem:
            raise InvalidOptionError(option, masked(url) if isinstance(url, str) else url, problem,
                                     dag_id, task_id, via)
    return targets


class Notifier:
    """A callback that sends one message to each Apprise URL in ``targets``.

    ``title`` and ``body`` are Jinja templates (see :data:`DEFAULT_TITLE` and :data:`DEFAULT_BODY`).
    The URLs are checked when the task (or DAG) that holds the notifier is built, so a malformed one
    stops the DAG file with an error naming the task and the URL, not the first failure."""

    def __init__(self, *targets: str | Iterable[str], title: str | None = None, body: str | None = None,
                 settings: Settings | None = None) -> None:
        flat: list[str] = []
        for target in targets:
            flat.extend([target] if isinstance(target, str) else list(target))
        if not flat:
            raise InvalidOptionError("Notifier", flat, "give at least one Apprise URL, such as 'json://host/hook'")
        self.targets = tuple(flat)
        self.title = DEFAULT_TITLE if title is None else title
        self.body = DEFAULT_BODY if body is None else body
        self._settings = settings
        self.__name__ = f"Notifier({', '.join(masked(url) for url in flat)})"

    def check(self, option: str, dag_id: str | None = None, task_id: str | None = None, via: str = "") -> None:
        """Refuse a target Apprise cannot deliver to, naming the DAG, the task and the option."""
        check_targets(list(self.targets), option, dag_id, task_id, via)

    def __repr__(self) -> str:
        return self.__name__

    def __call__(self, context: dict[str, Any]) -> None:
        settings = self._settings or _settings()
        values = message_context(context, settings)
        title, body = render_message(self.title, self.body, values)
        deliver(self.targets, title, body, values["event"], values.get("dag_id"), values.get("task_id"))


class EmailAlert:
    """The mail that the task options ``email_on_failure`` / ``email_on_retry`` send: the default
    notification, through the SMTP settings, to the task's ``email`` addresses."""

    def __init__(self, to: list[str], settings: Settings) -> None:
        self.to, self.settings = to, settings
        self.__name__ = f"email to {', '.join(to)}"

    def __call__(self, context: dict[str, Any]) -> None:
        from nbflow.mail import send_email

        values = message_context(context, self.settings)
        title, body = render_message(DEFAULT_TITLE, DEFAULT_BODY, values)
        send_email(self.settings, self.to, title, f"<pre>{html.escape(body)}</pre>")


def task_extras(task: Any, callback: str, settings: Settings) -> list[Any]:
    """What else a task's ``callback`` event sends, after its own callbacks: the DAG's (else the
    settings') ``notify_on_failure`` / ``notify_on_retry`` targets, and the mail of ``email_on_*``.
    Success is told once per run (:func:`run_extras`), not per task."""
    extras: list[Any] = []
    option = {"on_failure_callback": "notify_on_failure", "on_retry_callback": "notify_on_retry"}.get(callback)
    if option is not None:
        targets = targets_for(getattr(task, "dag", None), option, settings)
        if targets:
            extras.append(Notifier(*targets, settings=settings))
        flag = "email_on_failure" if callback == "on_failure_callback" else "email_on_retry"
        if task.email and getattr(task, flag, False):
            from nbflow.mail import addresses

            extras.append(EmailAlert(addresses(task.email) or [], settings))
    return extras


def run_extras(dag: Any, succeeded: bool, settings: Settings) -> list[Any]:
    """What a run's end sends besides the DAG's own callback: ``notify_on_success`` targets."""
    if not succeeded:
        return []  # a failed run is told by its failed tasks, which carry the error and the log
    targets = targets_for(dag, "notify_on_success", settings)
    return [Notifier(*targets, settings=settings)] if targets else []


def targets_for(dag: Any, option: str, settings: Settings) -> list[str]:
    """The DAG's own targets for ``option`` when it set them (``[]`` silences it), else the settings'."""
    own = getattr(dag, option, None)
    return list(own) if own is not None else list(getattr(settings, option))


def deadline_targets(dag: Any, settings: Settings) -> list[str]:
    """Who hears of a missed deadline: the DAG's ``deadline_notify``, else its failure targets."""
    own = getattr(dag, "deadline_notify", None)
    return list(own) if own is not None else targets_for(dag, "notify_on_failure", settings)


def message_context(context: dict[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    """The task's (or run's) context plus what a message names: ``dag_id``, ``task_id`` (None for a
    run), ``run_id`` and ``run`` (readable: "manual · 4 Dec 02:41"), ``event``, ``when`` (the logical
    date in the DAG's zone, with the zone), ``error`` (the last line of the error), ``try_number`` and
    ``max_tries``, ``log_path`` and ``log_tail``, ``failed_tasks`` (a failed run's: each task's id,
    try, ``error_line`` and ``log_path``) and ``url`` (the run in JupyterLab)."""
    settings = settings or _settings()
    dag, task = context.get("dag"), context.get("task")
    dag_id = getattr(dag, "dag_id", None) or context.get("dag_id")
    task_id = getattr(task, "task_id", None)
    map_index = context.get("map_index")
    if task_id is not None and isinstance(map_index, int) and map_index >= 0:
        task_id = f"{task_id}[{map_index}]"
    error = context.get("exception")
    event = context.get("event") or ("failed" if error else "succeeded")
    run_id = context.get("run_id") or ""
    logical = context.get("logical_date")
    zone = getattr(dag, "timezone", None)
    failed_tasks = [{**f, "error_line": last_line(f.get("error"))} for f in context.get("failed_tasks") or ()]
    log_path = context.get("log_path") if task_id is not None else None
    return {
        **context, "dag_id": dag_id, "task_id": task_id, "run_id": run_id, "event": event,
        "when": local_time(logical, zone) if isinstance(logical, datetime) else "",
        "run": run_label(run_id, logical if isinstance(logical, datetime) else None, zone),
        "error": last_line(error), "error_text": str(error) if error else None,
        "log_path": log_path if log_path and os.path.exists(str(log_path)) else None,
        "log_tail": log_tail(log_path), "try_number": context.get("try_number"),
        "max_tries": (getattr(task, "retries", None) + 1) if isinstance(getattr(task, "retries", None), int) else None,
        "failed_tasks": failed_tasks, "failed_names": ", ".join(f["task_id"] for f in failed_tasks),
        "url": run_url(settings.base_url, dag_id or "", run_id),
    }


def run_label(run_id: str, logical: datetime | None, zone: tzinfo | None = None) -> str:
    """A run as people name it: ``manual · 4 Dec 02:41`` (its kind, then its logical date in the DAG's
    zone); the id itself goes beside it, for searching."""
    kind = run_id.split("__", 1)[0] if "__" in run_id else run_id
    if logical is None:
        return kind or run_id
    local = logical.astimezone(zone) if zone is not None else logical.astimezone()
    return f"{kind} · {local.day} {local.strftime('%b %H:%M')}"


def render_message(title: str, body: str, values: dict[str, Any]) -> tuple[str, str]:
    from nbflow.templates import render_value

    return (str(render_value(title, values, field="title")).strip(),
            str(render_value(body, values, field="body")).strip() + "\n")


def local_time(moment: datetime, zone: tzinfo | None) -> str:
    """``2024-01-01 06:00 KST (Asia/Seoul)``: the time in the DAG's zone, saying which."""
    local = moment.astimezone(zone) if zone is not None else moment.astimezone()
    text = local.strftime("%Y-%m-%d %H:%M:%S").removesuffix(":00") + " " + (local.tzname() or "")
    name = getattr(local.tzinfo, "key", None)
    return f"{text.strip()} ({name})" if name and name != local.tzname() else text.strip()


def last_line(error: Any) -> str | None:
    """The last non-empty line of an error text (with a traceback, the exception itself)."""
    if not error:
        return None
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else None


def log_tail(path: Any, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file (its last 64 KiB read at most); empty when none."""
    if not path:
        return ""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 65536))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def run_url(base_url: str, dag_id: str, run_id: str) -> str:
    """The run in JupyterLab: ``{base_url}/lab?nbflow-dag=<dag>&nbflow-run=<run>``."""
    query = urlencode({"nbflow-dag": dag_id, "nbflow-run": run_id})
    return f"{base_url.rstrip('/')}/lab?{query}"


_TYPES = {"failed": "failure", "up for retry": "warning", "succeeded": "success"}


def deliver(targets: Iterable[str], title: str, body: str, event: str = "", dag_id: str | None = None,
            task_id: str | None = None) -> None:
    """Send ``title`` and ``body`` to each target, one after the other, so that one that fails
    leaves the others delivered; raise :class:`NotificationError` naming those that failed and
    what Apprise said of them. Apprise's errors are translated here, once."""
    import apprise

    failed: list[str] = []
    reasons: list[str] = []
    for url in targets:
        sender = apprise.Apprise()
        if not sender.add(url):
            failed.append(masked(url))
            reasons.append(target_problem(url) or "Apprise cannot read it")
            continue
        with apprise.LogCapture(level=logging.WARNING) as captured:
            try:
                ok = sender.notify(body=body, title=title, notify_type=_TYPES.get(event, "info"),
                                   body_format=apprise.NotifyFormat.TEXT)
            except Exception as exc:  # a plugin's own bug must not become the task's failure
                ok, extra = False, f"{type(exc).__name__}: {exc}"
            else:
                extra = ""
            said = [line.split(" - ", 2)[-1] for line in captured.getvalue().splitlines() if line.strip()]
        if not ok:
            failed.append(masked(url))
            reasons.append("; ".join(filter(None, [*said[-2:], extra])) or "Apprise could not deliver it")
    if failed:
        detail = "; ".join(f"{url}: {reason}" for url, reason in zip(failed, reasons))
        raise NotificationError(failed, detail, dag_id, task_id)


#: the threads that send notifications, made at the first one; their work is waited for by
#: :func:`wait_sent` (a host closing) and, as they are not daemons, by the interpreter's exit
_sender: ThreadPoolExecutor | None = None
_pending: set[Future[None]] = set()
_sender_lock = threading.Lock()
log = logging.getLogger(__name__)


def is_notification(callback: Any) -> bool:
    """Whether ``callback`` is one of nbflow's own senders, which the engine runs off its loop."""
    return isinstance(callback, (Notifier, EmailAlert))


def send_later(callback: Callable[[dict[str, Any]], Any], context: dict[str, Any],
               failed: Callable[[BaseException], None]) -> None:
    """Call ``callback(context)`` on a sender thread, and ``failed(error)`` if it raises: a slow or
    unreachable target (a connect timeout is seconds) must never hold up a scheduler host's loop,
    whose heartbeats other hosts watch."""
    global _sender
    with _sender_lock:
        if _sender is None:
            _sender = ThreadPoolExecutor(max_workers=4, thread_name_prefix="nbflow-notify")
        future = _sender.submit(_guarded, callback, context, failed)
        _pending.add(future)
    future.add_done_callback(_forget)


def _forget(future: Future[None]) -> None:
    with _sender_lock:
        _pending.discard(future)


def _guarded(callback: Callable[[dict[str, Any]], Any], context: dict[str, Any],
             failed: Callable[[BaseException], None]) -> None:
    try:
        callback(context)
    except Exception as exc:
        try:
            failed(exc)
        except Exception:  # reporting the failure failed too: the host's log still says it
            log.warning("notification %s failed: %s", getattr(callback, "__name__", callback), exc)


def wait_sent(timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for the notifications still being sent; True when none is left."""
    with _sender_lock:
        pending = list(_pending)
    if not pending:
        return True
    return not wait(pending, timeout=max(0.0, timeout)).not_done


def _settings() -> Settings:
    from nbflow.settings import get_settings

    return get_settings()
