"""Outputs: how they are encoded, the preview made where the task ran, and the one reader of stored
rows (nbflow.outputs), which unpickles only when asked for the Python value."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

import pytest

from nbflow import DAG, task
from nbflow.errors import OutputOnClusterError, OutputTooLargeError
from nbflow.outputs import (
    CUT,
    PREVIEW_CHARS,
    KeptOutput,
    decode,
    encode,
    kept_on_cluster,
    load_json,
    load_value,
    make_preview,
    read_stored,
    stored_preview,
)
from nbflow.engine.runs import load_run, run_dag
from nbflow.store import Store


class Boom:
    """Unpickling it runs a shell command that creates ``marker``: a stand-in for a hostile pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))

    def __repr__(self) -> str:
        return f"Boom({'x' * 10_000})"


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr today")


def test_encode_keeps_type_size_and_a_cut_repr() -> None:
    small = encode({"b": 1, "a": (2, 3)}, "d", "t", 10**6)
    assert small.kind == "pickle" and small.type_name == "dict" and small.size == len(small.data)
    assert small.preview == "{'b': 1, 'a': (2, 3)}"  # the dict's own order, as repr() has it
    text = encode({"é": "ü"}, "d", "t", 10**6)
    assert text.kind == "json" and text.size == len('{"é":"ü"}'.encode())  # bytes, not characters

    marker = Path("never-created")
    big = encode(Boom(marker), "d", "t", 10**6)
    assert big.type_name == f"{__name__}.Boom"
    assert len(big.preview) <= PREVIEW_CHARS and big.preview.startswith("Boom(xxx")
    assert "..." in big.preview  # reprlib cuts the middle of a long repr
    assert make_preview("y" * 10 * PREVIEW_CHARS).count("y") < PREVIEW_CHARS
    assert make_preview(list(range(10**6))).endswith(", ...]")  # a long list costs what 500 items do
    assert make_preview(BadRepr()) == f"<{__name__}.BadRepr: repr() failed: RuntimeError: no repr today>"
    assert make_preview([BadRepr()]) == f"[<{__name__}.BadRepr: repr() failed: RuntimeError: no repr today>]"
    assert make_preview("z" * 50, limit=10) == "'" + "z" * 8 + CUT


def test_an_output_over_keep_over_is_marked_to_stay_where_it_was_made_and_reads_as_such() -> None:
    """Over keep_over the store's limit does not apply (the value stays on the cluster); what the
    store then holds reads back as a KeptOutput in run.outputs and says so in views, never as bytes."""
    with pytest.raises(OutputTooLargeError):
        encode(list(range(1000)), "d", "t", 100)
    marked = encode(list(range(1000)), "d", "t", 100, keep_over=50)
    assert marked.keep and marked.kind == "json" and marked.size > 100
    assert not encode([1], "d", "t", 100, keep_over=50).keep

    kept = kept_on_cluster(marked, "nbflow-output-x")
    row = {"kind": kept.kind, "value_json": kept.data, "artifact_path": None, "size": kept.size,
           "type_name": kept.type_name, "preview": kept.preview}
    found, value = load_value(row)
    assert found and value == KeptOutput("nbflow-output-x", "list", marked.size, marked.preview)
    preview = stored_preview(row)
    assert preview.summary() == f"list · kept on the Dask cluster · {marked.size:,} bytes"
    assert preview.line().startswith("[0, 1, 2")
    with pytest.raises(OutputOnClusterError, match="get_dataset\\('nbflow-output-x'\\)"):
        decode("cluster", "nbflow-output-x")


def test_a_hostile_pickle_is_previewed_without_being_unpickled(nbflow_home: Path, tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"

    with DAG("hostile", timezone="UTC") as d:
        @task
        def make() -> Boom:
            return Boom(marker)

        make()

    run = run_dag(d, executor="inline")
    # run.outputs holds the Python values, so it unpickled: that also shows the marker works
    assert run.state == "success" and marker.exists()
    marker.unlink()
    with Store.open() as store:
        row = store.get_outputs(store.get_run("hostile", run.run_id)["id"])["make"]
    assert row["kind"] == "pickle" and row["value_json"] is None and row["artifact_path"]

    shown = stored_preview(row)
    assert shown.stored and shown.type_name == f"{__name__}.Boom" and shown.size == Path(row["artifact_path"]).stat().st_size
    assert shown.line().startswith("Boom(xxx") and len(shown.line()) <= PREVIEW_CHARS
    assert shown.summary() == f"{__name__}.Boom · pickle · {shown.size:,} bytes"
    assert load_json(row) == (False, None)  # not JSON: never read
    assert read_stored(row).data == Path(row["artifact_path"]).read_bytes()  # read, still encoded
    assert not marker.exists()

    found, _value = load_value(row)  # the callers that want the value do run the pickle
    assert found and marker.exists()
    marker.unlink()
    with Store.open() as store:
        load_run(store, "hostile", run.run_id)
    assert marker.exists()


@pytest.mark.parametrize("inline_bytes", ["65536", "0"])  # in the row, or in an output.json file
def test_json_outputs_read_back_as_json(nbflow_home: Path, monkeypatch: pytest.MonkeyPatch, inline_bytes: str) -> None:
    monkeypatch.setenv("NBFLOW_INLINE_OUTPUT_BYTES", inline_bytes)
    with DAG("plain", timezone="UTC") as d:
        @task
        def rows() -> dict[str, Any]:
            return {"rows": [1, 2, 3], "name": "é"}

        rows()

    run = run_dag(d, executor="inline")
    with Store.open() as store:
        row = store.get_outputs(store.get_run("plain", run.run_id)["id"])["rows"]
    assert (row["value_json"] is None) == (inline_bytes == "0")
    assert stored_preview(row).line() == "{'rows': [1, 2, 3], 'name': 'é'}"
    assert load_json(row) == (True, {"rows": [1, 2, 3], "name": "é"}) == load_value(row)
    assert run.outputs["rows"] == {"rows": [1, 2, 3], "name": "é"}
    if row["artifact_path"]:
        Path(row["artifact_path"]).unlink()
        assert load_json(row) == (False, None) and read_stored(row) is None
        assert stored_preview(row).line() == "{'rows': [1, 2, 3], 'name': 'é'}"  # kept in the store
