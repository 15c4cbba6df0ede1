"""``nbflow doctor``: the checks of what a newcomer's setup gets wrong, each one line, ok or the fix.

Every check runs even when an earlier one failed (a store that is not migrated says nothing about
the DAG files), except those that need what failed: no scheduler can be found in an unreachable
store. The exit status is 1 when any check failed, so scripts and CI can run it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from nbflow.cli.common import _plural
from nbflow.errors import NbflowError

#: below this much free space where logs go, a busy day of task logs may not fit
MIN_FREE_LOG_BYTES = 1 << 30
#: how long a network check waits for a server (SMTP, a webhook's host)
NETWORK_TIMEOUT = 5.0
#: notification schemes that are plain HTTP(S) requests to a host of the user's: their host is checked
_HTTP_SCHEMES = {"json": 80, "jsons": 443, "xml": 80, "xmls": 443, "form": 80, "forms": 443,
                 "http": 80, "https": 443}
SERVER_EXTENSION = "nbflow"
LAB_EXTENSION = "nbflow-labextension"


@dataclass
class Check:
    """One line of the report: ``ok`` with what was found, or what is wrong and how to fix it."""

    name: str
    ok: bool
    text: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.name}: {self.text}"


def cmd_doctor(args: argparse.Namespace) -> int:
    checks = run_checks(send_test=bool(args.send_test))
    for check in checks:
        print(check.line(), flush=True)
    failed = [check for check in checks if not check.ok]
    print(f"{_plural(len(failed), 'check')} failed" if failed else "everything looks right")
    return 1 if failed else 0


def run_checks(*, send_test: bool = False) -> list[Check]:
    """Every check, in the order a newcomer fixes things: settings, store, DAGs, scheduler, Jupyter,
    kernels, disk, notifications."""
    from nbflow.errors import ConfigError
    from nbflow.settings import get_settings

    try:
        settings = get_settings()
    except ConfigError as exc:
        return [Check("settings", False, str(exc))]
    checks: list[Check] = []
    store_ok = _store(settings, checks)
    bag = _dags(settings, checks)
    if store_ok:
        checks.append(_scheduler(settings))
    checks.extend(_jupyter())
    checks.append(_kernels(bag))
    checks.append(_disk(settings))
    checks.extend(_notifications(settings, send_test))
    return checks


# -- the store ------------------------------------------------------------------------------------


def _store(settings: Any, checks: list[Check]) -> bool:
    """Reachable and at this nbflow's schema; True when both."""
    from nbflow.store import Store
    from nbflow.store.engine import is_sqlite, safe_url
    from nbflow.store.migrate import HEAD_REVISION

    url = settings.database_url
    shown = safe_url(url)
    if is_sqlite(url):
        path = _sqlite_path(url)
        if path is not None and not path.exists():  # opening it would create it: say what to run instead
            checks.append(Check("store", False, f"{shown} does not exist yet: run `nbflow db upgrade` to create it"))
            return False
    try:
        with Store(url, busy_timeout=settings.db_busy_timeout) as store:
            found = store.schema_version()
    except NbflowError as exc:
        source = settings.source_of("database_url")
        checks.append(Check("store", False, f"cannot reach {shown} ({exc}): start the database server, or fix "
                                            f"database_url (set in {source})"))
        return False
    if found is None:
        checks.append(Check("store", False, f"{shown} has no nbflow schema: run `nbflow db upgrade`"))
        return False
    if found != HEAD_REVISION:
        checks.append(Check("store", False, f"{shown} has schema version {found}, this nbflow needs "
                                            f"{HEAD_REVISION}: run `nbflow db upgrade` (a newer version means "
                                            "nbflow itself is older than the database: upgrade nbflow)"))
        return False
    checks.append(Check("store", True, f"{shown}, schema version {found}"))
    return True


def _sqlite_path(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    database = make_url(url).database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser()


# -- DAG files ------------------------------------------------------------------------------------


def _dags(settings: Any, checks: list[Check]) -> Any:
    """Load dags_folder as the scheduler does (each file in a process of its own); the bag, or None."""
    from nbflow.engine.dagparsing import DagFileParser
    from nbflow.engine.discovery import collect

    folder = Path(settings.dags_folder)
    if not folder.is_dir():
        checks.append(Check("dags", False, f"dags_folder {folder} does not exist: create it "
                                           f"(mkdir -p {folder}) and put DAG files or notebooks in it"))
        return None
    bag = collect([folder], load=DagFileParser(settings.dag_file_timeout))
    for failure in bag.failures.values():
        checks.append(Check("dags", False, f"{failure.fileloc} does not load: {failure.summary} "
                                           f"(the traceback: nbflow dags list-import-errors)"))
    if not bag.dags and not bag.failures:
        checks.append(Check("dags", False, f"no DAG in {folder}: put a DAG file or notebook there "
                                           "(nbflow demo shows one)"))
    elif bag.dags:
        names = ", ".join(sorted(bag.dags)[:5]) + (", ..." if len(bag.dags) > 5 else "")
        checks.append(Check("dags", True, f"{_plural(len(bag.dags), 'DAG')} loaded from {folder} ({names})"))
    return bag


# -- scheduler hosts ------------------------------------------------------------------------------


def _scheduler(settings: Any) -> Check:
    """A host that schedules (a daemon, or a Jupyter server running one) has beaten recently."""
    from nbflow.store import Store

    try:
        with Store(settings.database_url, busy_timeout=settings.db_busy_timeout) as store:
            hosts = store.list_hosts(state="running")
    except NbflowError as exc:
        return Check("scheduler", False, f"cannot read the scheduler hosts ({exc})")
    now = datetime.now(UTC)
    alive = [host for host in hosts if host["kind"] in ("daemon", "jupyter-server") and host["heartbeat_at"] is not None
             and (now - host["heartbeat_at"]).total_seconds() < settings.host_stale_after]
    if not alive:
        return Check("scheduler", False, "no scheduler is running, so nothing runs on its schedule: start one with "
                                         "`nbflow scheduler` (or set server_scheduler = true and start JupyterLab)")
    described = ", ".join(f"{host['kind']} {host['host_id']} (pid {host['pid']} on {host['hostname']})"
                          for host in alive[:3])
    return Check("scheduler", True, f"{_plural(len(alive), 'host')} alive: {described}")


# -- Jupyter --------------------------------------------------------------------------------------


def _jupyter() -> list[Check]:
    """nbflow's Jupyter server extension enabled, and its JupyterLab extension installed and not
    disabled, read from the same configuration Jupyter reads."""
    import logging

    try:
        from jupyter_core.paths import jupyter_config_path, jupyter_path
        from jupyter_server.extension.config import ExtensionConfigManager
        from jupyterlab_server.config import get_federated_extensions, get_page_config
    except ImportError as exc:
        return [Check("jupyter", False, f"JupyterLab is not installed in this environment ({exc}): "
                                        "pip install jupyterlab, in the environment nbflow is in")]
    checks = []
    manager = ExtensionConfigManager(read_config_path=jupyter_config_path())
    if manager.enabled(SERVER_EXTENSION):
        checks.append(Check("jupyter server extension", True, f"{SERVER_EXTENSION} is enabled"))
    else:
        checks.append(Check("jupyter server extension", False, f"{SERVER_EXTENSION} is not enabled: run "
                                                               f"`jupyter server extension enable {SERVER_EXTENSION}`"))
    paths = jupyter_path("labextensions")
    installed = get_federated_extensions(paths)
    disabled = get_page_config(paths, logger=logging.getLogger("nbflow.doctor")).get("disabledExtensions") or {}
    off = disabled.get(LAB_EXTENSION) if isinstance(disabled, dict) else LAB_EXTENSION in disabled
    if LAB_EXTENSION not in installed:
        checks.append(Check("jupyterlab extension", False, f"{LAB_EXTENSION} is not installed where JupyterLab "
                                                           "looks: reinstall nbflow in the environment that runs "
                                                           "JupyterLab (pip install nbflow)"))
    elif off:
        checks.append(Check("jupyterlab extension", False, f"{LAB_EXTENSION} is disabled: run "
                                                           f"`jupyter labextension enable {LAB_EXTENSION}`"))
    else:
        version = installed[LAB_EXTENSION].get("version", "")
        checks.append(Check("jupyterlab extension", True, f"{LAB_EXTENSION} {version} is installed".replace("  ", " ")))
    return checks


# -- kernels --------------------------------------------------------------------------------------


def _kernels(bag: Any) -> Check:
    """The kernel every notebook task needs (its ``kernel_name``, else its notebook's, else
    python3) has a kernel spec."""
    from jupyter_client.kernelspec import KernelSpecManager

    available = KernelSpecManager().find_kernel_specs()
    needed: dict[str, list[str]] = {"python3": []}
    for dag in (bag.dags.values() if bag is not None else ()):
        for task in dag.tasks:
            if hasattr(task, "kernel_name") and hasattr(task, "notebook"):
                name = task.kernel_name or _notebook_kernel(task.notebook) or "python3"
                needed.setdefault(name, []).append(f"{dag.dag_id}.{task.task_id}")
    missing = {name: users for name, users in needed.items() if name not in available}
    if not missing:
        return Check("kernels", True, f"kernel spec {', '.join(sorted(needed))} found "
                                      f"({available[sorted(needed)[0]]})")
    what = "; ".join(f"{name}" + (f" (for {', '.join(users[:3])})" if users else "") for name, users in missing.items())
    return Check("kernels", False, f"no kernel spec {what}: install it in this environment "
                                   "(for python3: python -m ipykernel install --sys-prefix); found: "
                                   f"{', '.join(sorted(available)) or 'none'}")


def _notebook_kernel(path: Any) -> str | None:
    try:
        metadata = json.loads(Path(path).read_text(encoding="utf-8")).get("metadata", {})
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    name = (metadata.get("kernelspec") or {}).get("name")
    return name if isinstance(name, str) and name else None


# -- disk -----------------------------------------------------------------------------------------


def _disk(settings: Any) -> Check:
    folder = Path(settings.logs_folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    usage = shutil.disk_usage(existing)
    free = f"{usage.free / (1 << 30):.1f} GiB free of {usage.total / (1 << 30):.1f} GiB"
    if usage.free < MIN_FREE_LOG_BYTES:
        return Check("disk", False, f"{free} where logs go ({folder}): free space there, move logs_folder to a "
                                    "larger disk, or lower retention_days")
    return Check("disk", True, f"{free} where logs go ({folder})")


# -- notifications --------------------------------------------------------------------------------


def _notifications(settings: Any, send_test: bool) -> list[Check]:
    """SMTP and the notification targets, when settings name them; ``send_test`` sends a message
    to each. Settings this nbflow does not have are taken as unset."""
    targets = [target for key in ("notify_on_failure", "notify_on_success", "notify_on_retry")
               for target in (getattr(settings, key, None) or ())]
    targets = list(dict.fromkeys(str(target) for target in targets))
    smtp_set = _smtp_configured(settings, targets)
    checks: list[Check] = []
    if smtp_set:
        checks.append(_smtp(settings))
    for target in targets:
        checks.append(_target(target))
    if send_test:
        checks.extend(_send_tests(settings, targets, smtp_set))
    return checks


def _smtp_configured(settings: Any, targets: Iterable[str]) -> bool:
    if getattr(settings, "smtp_host", None) is None:
        return False
    source_of: Callable[[str], str] = getattr(settings, "source_of", lambda key: "default")
    named = any(source_of(key) != "default" for key in ("smtp_host", "smtp_port", "smtp_mail_from"))
    return named or any(target.startswith("mailto") for target in targets)


def _smtp(settings: Any) -> Check:
    import smtplib

    where = f"{settings.smtp_host}:{settings.smtp_port}"
    try:
        client: smtplib.SMTP = (smtplib.SMTP_SSL if getattr(settings, "smtp_ssl", False) else smtplib.SMTP)(
            settings.smtp_host, settings.smtp_port, timeout=NETWORK_TIMEOUT)
        with client:
            code, _ = client.ehlo()
    except (OSError, smtplib.SMTPException) as exc:
        return Check("smtp", False, f"cannot reach the SMTP server {where} ({exc.__class__.__name__}: {exc}): "
                                    "check smtp_host and smtp_port, and that the server runs")
    if code >= 400:
        return Check("smtp", False, f"the SMTP server {where} answered EHLO with {code}: check smtp_host and smtp_port")
    return Check("smtp", True, f"the SMTP server {where} answers")


def _masked(target: str) -> str:
    """The target as a line may show it: scheme, host, port and path of a webhook, never a login
    or token (other services keep tokens in the host and path, so only their scheme is shown)."""
    parts = urlsplit(target)
    if parts.scheme.lower() not in _HTTP_SCHEMES:
        return f"{parts.scheme}://..."
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


def _target(target: str) -> Check:
    """A webhook's host must accept a connection; other services are checked by --send-test only."""
    parts = urlsplit(target)
    shown = _masked(target)
    port = _HTTP_SCHEMES.get(parts.scheme.lower())
    if port is None or not parts.hostname:
        return Check("notify", True, f"{shown}: not checked without sending (nbflow doctor --send-test sends one)")
    try:
        port = parts.port or port
    except ValueError:
        return Check("notify", False, f"{shown}: the port is not a number: fix the target URL")
    try:
        with socket.create_connection((parts.hostname, port), timeout=NETWORK_TIMEOUT):
            pass
    except OSError as exc:
        return Check("notify", False, f"{shown}: cannot connect to {parts.hostname}:{port} ({exc}): check the "
                                      "target URL and that its server runs")
    return Check("notify", True, f"{shown}: {parts.hostname}:{port} accepts connections")


def _send_tests(settings: Any, targets: list[str], smtp_set: bool) -> list[Check]:
    if not targets and not smtp_set:
        return [Check("send-test", True, "nothing to send to: no notify_on_* targets and no SMTP settings")]
    checks = []
    title, body = "nbflow doctor: test message", "nbflow can reach you here."
    if targets:
        try:
            from nbflow.notifications import deliver
        except ImportError:
            checks.append(Check("send-test", False, "this nbflow cannot send notifications (no nbflow.notifications)"))
        else:
            for target in targets:
                try:
                    deliver([target], title, body)
                except NbflowError as exc:
                    checks.append(Check("send-test", False, f"{_masked(target)}: {exc}"))
                else:
                    checks.append(Check("send-test", True, f"{_masked(target)}: test message sent"))
    if smtp_set:
        sender = getattr(settings, "smtp_mail_from", "")
        if not sender:
            checks.append(Check("send-test", False, "no test email sent: set smtp_mail_from (it is also where "
                                                    "the test goes)"))
            return checks
        try:
            from nbflow.mail import send_email
        except ImportError:
            checks.append(Check("send-test", False, "this nbflow cannot send email (no nbflow.mail)"))
            return checks
        try:
            send_email(settings, [sender], title, f"<p>{body}</p>")
        except NbflowError as exc:
            checks.append(Check("send-test", False, f"email to {sender}: {exc}"))
        else:
            checks.append(Check("send-test", True, f"test email sent to {sender} through "
                                                   f"{settings.smtp_host}:{settings.smtp_port}"))
    return checks
