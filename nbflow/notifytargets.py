"""Notification targets: Apprise URLs, checked where they are written and masked where they are shown.

Kept apart from :mod:`nbflow.notifications` so that the settings can check ``notify_on_*`` when they
load without importing the sending side (which reads the settings). One Apprise URL per target:
``mailto://``, ``json://`` webhooks, Slack, Teams, ... (Apprise's own list of services).
"""

from __future__ import annotations

import re
from typing import Any

#: ``scheme://user:password@`` with the password masked, for targets Apprise cannot parse
_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@/\s]*@")


def target_problem(url: Any) -> str | None:
    """What is wrong with ``url`` as a notification target, or None when Apprise can deliver to it.
    Apprise is imported here, when a target is first checked, never at import time."""
    if not isinstance(url, str) or not url.strip():
        return "a target is an Apprise URL as text, such as 'json://host/hook' or 'mailto://user:pass@host'"
    if "://" not in url:
        return "it has no scheme: write it as an Apprise URL, such as 'json://host/hook' or 'mailto://...'"
    import apprise

    if apprise.Apprise.instantiate(url.strip()) is None:
        scheme = url.split("://", 1)[0]
        known = scheme.lower() in {s.lower() for s in _schemes()}
        return ("Apprise cannot read it: check its host, user, token and options" if known else
                f"Apprise knows no service '{scheme}://' (json://, mailto://, slack://, msteams://, ... "
                "see Apprise's list of services)")
    return None


def _schemes() -> set[str]:
    import apprise

    found: set[str] = set()
    for entry in apprise.Apprise().details().get("schemas", []):
        for key in ("protocols", "secure_protocols"):
            found.update(entry.get("details", {}).get(key) or entry.get(key) or ())
    return found


def as_targets(value: Any) -> list[str] | None:
    """``value`` (one URL or a list of them) as a list of texts, or None when it is neither."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return list(value)
    return None


def masked(url: str) -> str:
    """``url`` as logs and messages may show it: Apprise's private form (passwords and tokens
    masked) when it can read the URL, else the URL with any password masked."""
    try:
        import apprise

        plugin = apprise.Apprise.instantiate(url)
        if plugin is not None:
            return str(plugin.url(privacy=True))
    except Exception:  # masking must never be the thing that fails
        pass
    return _PASSWORD.sub(r"\1****@", url)
