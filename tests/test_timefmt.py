"""Times in the notebook views: ``<time>`` elements the Lab extension can put in the browser's zone."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from html import unescape

from nbflow.jupyter.timefmt import iso_utc, run_html, run_words, split_run_id, time_html
from nbflow.jupyter.toolbar import run_label, run_options, run_times


def test_time_html_carries_the_utc_instant_and_a_named_fallback() -> None:
    when = datetime(2026, 12, 4, 1, 33, 32, tzinfo=timezone.utc)
    html = time_html(when)
    assert "datetime='2026-12-04T01:33:32Z'" in html and "title='2026-12-04 01:33:32 UTC'" in html
    assert re.search(r">2026-12-04 \d\d:33:32 .+</time>$", html)
    assert time_html(None) == "-"
    assert iso_utc(datetime(2026, 12, 4, 1, 33, 32)) == "2026-12-04T01:33:32Z"  # naive: UTC, as stored


def test_run_ids_read_as_type_and_time() -> None:
    kind, when = split_run_id("manual__2026-12-04T01:41:01+00:00")
    assert kind == "manual" and when == datetime(2026, 12, 4, 1, 41, 1, tzinfo=timezone.utc)
    assert re.fullmatch(r"manual · \d{1,2} Dec \d\d:41", run_words("manual__2026-12-04T01:41:01+00:00"))
    assert run_words("my own id") == "my own id"
    html = run_html("manual__2026-12-04T01:41:01+00:00")
    assert "title='manual__2026-12-04T01:41:01+00:00'" in html and "datetime='2026-12-04T01:41:01Z'" in html
    assert "data-format='short'" in html
    assert run_html("<odd>") == "<code>&lt;odd&gt;</code>"


def test_the_run_picker_names_runs_and_hands_their_times_to_the_extension() -> None:
    when = datetime(2026, 12, 4, 1, 41, 1, tzinfo=timezone.utc)
    runs = [{"run_id": "manual__2026-12-04T01:41:01+00:00", "run_type": "manual", "state": "success",
             "logical_date": when},
            {"run_id": "manual__2026-12-04T01:41:30+00:00", "run_type": "manual", "state": "failed",
             "logical_date": when}]
    assert re.fullmatch(r"manual · \d{1,2} Dec \d\d:41 · success", run_label(runs[0]))
    options = run_options(runs)
    html = run_times(options, {r["run_id"]: r for r in runs})
    entries = json.loads(unescape(re.search(r"data-nbflow-runs='([^']*)'", html).group(1)))
    assert [e["run_id"] for e in entries] == [r["run_id"] for r in runs]
    assert all(e["iso"] == "2026-12-04T01:41:01Z" and e["before"] == "manual · " for e in entries)
    assert entries[0]["after"] == " · success" and entries[1]["after"] == " · failed"
    assert "(no run yet)" in run_times([("(no run yet)", None)], {})
