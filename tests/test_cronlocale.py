"""Schedules in words in the reader's language (cron-descriptor), chosen by name or by the locale."""

from __future__ import annotations

import pytest

from nbflow.cronlocale import languages, resolve_language
from nbflow.cronwords import describe_cron, describe_schedule
from nbflow.errors import InvalidOptionError


@pytest.mark.parametrize(
    ("language", "expression", "words"),
    [
        ("de", "30 7 * * 1-5", "Um 07:30, Montag bis Freitag"),
        ("de_DE", "0 0 1 1 *", "Um 00:00, am 1 Tag des Monats, nur im Januar"),
        ("ja", "30 7 * * 1-5", "次において実施 07:30、月曜日 から 金曜日 まで"),
        ("ja_JP", "@daily", "次において実施 00:00"),
        ("ko", "0 9 * * 1,3,5", "09:00, 월요일, 수요일, 그리고 금요일에"),
        ("fr", "*/15 * * * *", "Toutes les 15 minutes"),
        ("en", "30 7 * * 1-5", "at 07:30, Monday to Friday"),  # English stays nbflow's own sentence
    ],
)
def test_cron_words_in_the_asked_language(language: str, expression: str, words: str) -> None:
    assert describe_cron(expression, language) == words


def test_the_users_locale_picks_the_language(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    assert describe_cron("0 6 * * *") == "Um 06:00"
    assert describe_schedule("0 6 * * 1") == "Um 06:00, nur am Montag"
    monkeypatch.setenv("LC_ALL", "ja_JP.UTF-8")  # LC_ALL wins over LANG
    assert describe_cron("0 6 * * *") == "次において実施 06:00"
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    assert describe_cron("0 6 * * *") == "at 06:00 every day"
    assert resolve_language(None, {"LANG": "xx_YY.UTF-8"}) == "en_US", "a locale without words is English"


def test_a_language_without_words_is_refused_naming_the_ones_there_are() -> None:
    with pytest.raises(InvalidOptionError, match="language") as caught:
        describe_cron("0 6 * * *", "klingon")
    assert "de_DE" in str(caught.value) and "ja_JP" in str(caught.value)
    assert {"de_DE", "ja_JP", "ko_KR"} <= set(languages())


def test_a_browsers_accept_language_picks_the_most_wanted_language_it_has() -> None:
    from nbflow.cronlocale import from_accept_language

    assert from_accept_language("de-DE,de;q=0.9,en;q=0.8") == "de_DE"
    assert from_accept_language("en-GB,de;q=0.9") == "en_US"  # English is nbflow's own words
    assert from_accept_language("xx, ko;q=0.5, ja;q=0.7") == "ja_JP"  # by quality, skipping what it lacks
    assert from_accept_language("ja;q=0, *") is None  # q=0 means "not this"; * says nothing
    assert from_accept_language("xx-YY") is None and from_accept_language(None) is None
