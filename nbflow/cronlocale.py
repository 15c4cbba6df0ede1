"""Schedules in words in the reader's language, through cron-descriptor.

English sentences are nbflow's own (:mod:`nbflow.cronwords`, checked against the times a cron
makes). For the other languages cron-descriptor has (German, Japanese, Korean, French, Spanish,
Chinese, ... see :func:`languages`), its sentence is used, with the names of weekdays and months in
that language too (cron-descriptor takes those from the process's C locale, so Babel's CLDR names
replace them).

The language is the one asked for (``language="de"``), else the user's locale (``LC_ALL``,
``LC_MESSAGES``, ``LANG``), else English. A language asked for by name that cron-descriptor does not
have is refused; a locale of the machine that it does not have falls back to English.
"""

from __future__ import annotations

import calendar
import os
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from nbflow.errors import InvalidOptionError, ScheduleError

__all__ = ["describe_in", "from_accept_language", "is_english", "languages", "resolve_language"]

ENGLISH = "en_US"


@lru_cache(maxsize=1)
def languages() -> tuple[str, ...]:
    """The locale codes cron-descriptor has words for (``de_DE``, ``ja_JP``, ``ko_KR``, ...)."""
    import cron_descriptor

    folder = Path(cron_descriptor.__file__).parent / "locale"
    return tuple(sorted(path.stem for path in folder.glob("*.mo")))


def _match(value: str) -> str | None:
    """``de`` → ``de_DE``, ``pt-br``/``pt_BR`` → ``pt_PT`` (the language when the region is missing)."""
    cleaned = re.split(r"[.@]", value.strip(), maxsplit=1)[0].replace("-", "_")
    if not cleaned:
        return None
    parts = cleaned.split("_", 1)
    code = parts[0].lower() + ("_" + parts[1].upper() if len(parts) > 1 else "")
    known = languages()
    if code in known:
        return code
    same_language = [c for c in known if c.split("_")[0] == parts[0].lower()]
    if not same_language:
        return None
    # the language's own country first (de_DE, ja_JP), else the first region it has
    preferred = f"{parts[0].lower()}_{parts[0].upper()}"
    return preferred if preferred in same_language else same_language[0]


def resolve_language(language: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The cron-descriptor locale code to phrase schedules in.

    ``language`` names one (``"de"``, ``"ja_JP"``, ``"ko-KR"``); an unknown one raises
    :class:`~nbflow.errors.InvalidOptionError` listing those there are. Without it, the user's
    locale decides (``LC_ALL``, then ``LC_MESSAGES``, then ``LANG``); ``C``, ``POSIX`` or a locale
    cron-descriptor lacks means English.
    """
    if language is not None and str(language).strip():
        code = _match(str(language))
        if code is None:
            raise InvalidOptionError(
                "language", language, "schedules in words come in " + ", ".join(languages()) + " (or a language "
                "code such as 'de' or 'ja')")
        return code
    env = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = (env.get(name) or "").strip()
        if value:
            if value in ("C", "POSIX") or value.startswith(("C.", "POSIX.")):
                return ENGLISH
            return _match(value) or ENGLISH
    return ENGLISH


def from_accept_language(header: str | None) -> str | None:
    """The language to phrase schedules in for a browser that sent this ``Accept-Language`` header
    (``"de-DE,de;q=0.9,en;q=0.8"``): its most wanted language cron-descriptor has, English included;
    None when it names none (the server's locale decides then)."""
    wanted: list[tuple[float, int, str]] = []
    for index, item in enumerate((header or "").split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and tag != "*" and quality > 0:
            wanted.append((-quality, index, tag))
    for _, _, tag in sorted(wanted):
        if tag.split("-", 1)[0].lower() == "en":
            return ENGLISH
        code = _match(tag)
        if code is not None:
            return code
    return None


def is_english(code: str) -> bool:
    return code.split("_", 1)[0] == "en"


def _babel_names(code: str) -> dict[str, str]:
    """English weekday and month names (as cron-descriptor writes them) → the language's own."""
    from babel.core import Locale, UnknownLocaleError
    from babel.dates import get_day_names, get_month_names

    try:
        locale = Locale.parse(code)
    except (UnknownLocaleError, ValueError):
        return {}
    days = get_day_names("wide", locale=locale)  # 0 is Monday, as in calendar
    months = get_month_names("wide", locale=locale)  # 1 is January
    with calendar.different_locale("C"):  # type: ignore[attr-defined]
        english_days = list(calendar.day_name)
        english_months = list(calendar.month_name)
    names = {english_days[i]: str(days[i]) for i in range(7)}
    names.update({english_months[i]: str(months[i]) for i in range(1, 13)})
    return names


@lru_cache(maxsize=512)
def describe_in(expression: str, code: str) -> str:
    """The 5-field ``expression`` (already checked by :func:`nbflow.cron.parse_cron`) in words, in
    the language ``code`` (a :func:`languages` code), on a 24-hour clock."""
    from cron_descriptor import ExpressionDescriptor, Options

    options = Options()
    options.locale_code = code
    options.use_24hour_time_format = True
    try:
        text = ExpressionDescriptor(expression, options).get_description()
    except Exception as exc:  # cron-descriptor's own errors, translated here once
        raise ScheduleError(expression, f"it cannot be put in words ({type(exc).__name__}: {exc})") from exc
    names = _babel_names(code)
    if names:
        # not \b: in Korean or Japanese a particle follows the name with no space ("Friday에")
        pattern = re.compile(r"(?<![A-Za-z])(" + "|".join(sorted(map(re.escape, names), key=len, reverse=True))
                             + r")(?![A-Za-z])")
        text = pattern.sub(lambda m: names[m.group(1)], text)
    return text
