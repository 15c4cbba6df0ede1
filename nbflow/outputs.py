"""How task outputs are kept and read back: JSON when the value is plain data, pickle otherwise.

JSON is chosen only when it gives back exactly what was returned (lists, dicts with string keys,
strings, numbers, booleans, None), so a tuple or a datetime is never silently changed on its way
downstream.

Reading a pickle runs whatever code the pickle names, so it is done only where the Python value is
needed (a downstream task, ``run.outputs``, ``nbflow tasks test``): :func:`load_value`. Views (the
REST API, the details panel) show an :class:`OutputPreview` instead: the type, the size and a cut
repr, computed by :func:`encode` in the process that ran the task and stored next to the output, so
that showing an output never unpickles it. Every reader of a ``task_output`` row goes through the
functions at the end of this module.

An output larger than the ``dask_keep_outputs_over`` setting, made on a Dask worker, stays on the
cluster (kind ``cluster``): the store keeps its preview, its size and its dataset name on the
cluster, the downstream tasks read it there, and the host releases it when the run ends.
"""

from __future__ import annotations

import itertools
import json
import pickle
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbflow.errors import OutputNotSerializableError, OutputOnClusterError, OutputTooLargeError

#: longest stored preview, in characters: enough to recognise a value, small enough for every view
PREVIEW_CHARS = 4096
#: the end of a preview that was cut
CUT = "…"
#: the kind of an output kept on the Dask cluster: its data is the dataset's name there
CLUSTER = "cluster"


@dataclass(frozen=True)
class EncodedOutput:
    kind: str            #: "json" or "pickle"; "cluster" once kept on the Dask cluster
    data: str | bytes    #: the serialised value; for "cluster", the dataset's name there
    size: int            #: bytes of the serialised value
    type_name: str = ""  #: the value's type, ``module.QualName`` (bare for builtins)
    preview: str = ""    #: the value's repr, cut to PREVIEW_CHARS
    #: larger than the try may send back (its request's keep_outputs_over): the executor that ran
    #: it keeps it where it is (the Dask cluster) instead
    keep: bool = False

    def decode(self) -> Any:
        return decode(self.kind, self.data)


def _plain(value: Any, depth: int = 0) -> bool:
    if value is None or isinstance(value, (bool, str)):
        return True
    if type(value) in (int, float):
        return value == value and value not in (float("inf"), float("-inf"))
    if depth > 50:
        return False
    if type(value) is list:
        return all(_plain(item, depth + 1) for item in value)
    if type(value) is dict:
        return all(type(k) is str and _plain(v, depth + 1) for k, v in value.items())
    return False


def type_name(value: Any) -> str:
    cls = type(value)
    module = getattr(cls, "__module__", None)
    return cls.__qualname__ if module in ("builtins", None, "") else f"{module}.{cls.__qualname__}"


class _PreviewRepr(reprlib.Repr):
    """reprlib, keeping a dict's own order (reprlib sorts the keys, which misstates a dict)."""

    def repr_dict(self, x: dict[Any, Any], level: int) -> str:
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        pieces = [f"{self.repr1(key, level - 1)}: {self.repr1(value, level - 1)}"
                  for key, value in itertools.islice(x.items(), self.maxdict)]
        if len(x) > self.maxdict:
            pieces.append("...")
        return "{" + ", ".join(pieces) + "}"

    def repr_instance(self, x: Any, level: int) -> str:
        try:
            text = repr(x)
        except Exception as exc:  # a user's __repr__ can fail in any way; say so instead of hiding it
            return f"<{type_name(x)}: repr() failed: {type(exc).__name__}: {exc}>"
        if len(text) <= self.maxother:
            return text
        half = (self.maxother - 3) // 2
        return text[:half] + "..." + text[len(text) - half:]


def _bounded_repr() -> reprlib.Repr:
    # reprlib stops walking a container after max* items, so the preview of a list of a million
    # rows costs what the preview of a thousand does; small values come out exactly as repr().
    shown = _PreviewRepr()
    shown.maxlevel = 8
    shown.maxtuple = shown.maxlist = shown.maxarray = shown.maxdict = 500
    shown.maxset = shown.maxfrozenset = shown.maxdeque = 500
    shown.maxstring = shown.maxother = shown.maxlong = PREVIEW_CHARS
    return shown


def make_preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """The value's repr cut to ``limit`` characters; a repr that raises is described, not raised."""
    try:
        text = _bounded_repr().repr(value)
    except Exception as exc:  # a user's __repr__ can fail in any way; the output is still kept
        return f"(repr() of this {type_name(value)} failed: {type(exc).__name__}: {exc})"[:limit]
    return text if len(text) <= limit else text[: limit - 1] + CUT


def encode(value: Any, dag_id: str, task_id: str, max_bytes: int, keep_over: int = 0) -> EncodedOutput:
    """Serialise a task's return value, or raise an error that names the task and the fix.

    The preview is made here, where the value is, so that nobody has to unpickle it to show it.
    Over ``keep_over`` bytes (0: never) the output is marked to be kept where it was made, and
    ``max_bytes``, the store's limit, does not apply to it."""
    if _plain(value):
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        size = len(text) if text.isascii() else len(text.encode())
        kind: str = "json"
        data: str | bytes = text
    else:
        try:
            data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # pickle raises many kinds: TypeError, PicklingError, AttributeError
            raise OutputNotSerializableError(dag_id, task_id, type(value).__name__, f"{type(exc).__name__}: {exc}") from exc
        kind, size = "pickle", len(data)
    if keep_over and size > keep_over:
        return EncodedOutput(kind, data, size, type_name(value), make_preview(value), keep=True)
    if size > max_bytes:
        raise OutputTooLargeError(dag_id, task_id, size, max_bytes)
    return EncodedOutput(kind, data, size, type_name(value), make_preview(value))


def decode(kind: str, data: str | bytes) -> Any:
    """The Python value of an encoded output. For ``pickle`` this runs code: see the module docstring.

    ``mapped`` is what a downstream task gets of a mapped task: its instances' encoded outputs, in
    map index order, decoded into a list."""
    if kind == "json":
        return json.loads(data)
    if kind == "mapped":
        return [decode(k, d) for k, d in data]  # type: ignore[misc]
    if kind == CLUSTER:
        raise OutputOnClusterError(None, None, str(data), "this process has no client of that cluster to read it",
                                   f"Read it with distributed.Client(<dask_address>).get_dataset({str(data)!r}) "
                                   "while its run is not over, or set dask_keep_outputs_over to 0 to keep every "
                                   "output in the store.")
    return pickle.loads(data if isinstance(data, bytes) else data.encode("latin-1"))


# -- stored outputs (task_output rows) ----------------------------------------------------------------


@dataclass(frozen=True)
class OutputPreview:
    """What a view may show of a stored output without running any code of it."""

    kind: str | None       #: "json", "pickle", or None when the row does not say
    type_name: str | None  #: None for an output stored before previews were
    size: int | None       #: bytes, as serialised
    text: str | None       #: the stored, cut repr; None when none is stored

    @property
    def stored(self) -> bool:
        return self.text is not None

    def summary(self) -> str:
        """``dict · json · 11 bytes``: what the output is, in one short line."""
        kind = "kept on the Dask cluster" if self.kind == CLUSTER else self.kind
        parts = [self.type_name or "type not stored", kind or "format unknown"]
        parts.append(f"{self.size:,} bytes" if self.size is not None else "size unknown")
        return " · ".join(parts)

    def line(self) -> str:
        """The preview text, or one line saying why there is none."""
        if self.text is not None:
            return self.text
        what = f"a {self.kind} output" if self.kind else "an output"
        size = f" of {self.size:,} bytes" if self.size is not None else ""
        return (f"(no preview stored: {what}{size} written before nbflow stored previews; it is not read "
                "here. Load it where its value is needed, e.g. nbflow.engine.runs.load_run(...).outputs)")

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "type": self.type_name, "size": self.size, "preview": self.line(),
                "preview_stored": self.stored}


def kept_on_cluster(encoded: EncodedOutput, name: str) -> EncodedOutput:
    """``encoded`` once its data stays on the Dask cluster as dataset ``name``: what the store keeps
    of it (its preview, size and type, and the name)."""
    return EncodedOutput(CLUSTER, name, encoded.size, encoded.type_name, encoded.preview)


def cluster_names(encoded: tuple[str, Any]) -> list[str]:
    """The dataset names of the outputs kept on the cluster in one encoded (kind, data) pair, a
    mapped task's list of them included."""
    kind, data = encoded
    if kind == CLUSTER:
        return [str(data)]
    if kind == "mapped":
        return [name for item in data for name in cluster_names(item)]
    return []


def output_row(task_id: str, encoded: EncodedOutput, *, value_json: str | None = None,
               artifact_path: str | None = None) -> dict[str, Any]:
    """A task_output row for ``encoded``, kept inline (``value_json``) or in ``artifact_path``."""
    return {"task_id": task_id, "kind": encoded.kind, "size": encoded.size, "type_name": encoded.type_name or None,
            "preview": encoded.preview, "value_json": value_json, "artifact_path": artifact_path}


def stored_kind(row: Mapping[str, Any]) -> str | None:
    """json or pickle; rows written before the kind was stored tell it by where the data is."""
    if row.get("kind"):
        return str(row["kind"])
    if row.get("value_json") is not None:
        return "json"
    path = row.get("artifact_path")
    if path:
        return "json" if Path(path).suffix == ".json" else "pickle"
    return None


def stored_preview(row: Mapping[str, Any]) -> OutputPreview:
    """The preview of a stored output. Never unpickles and never opens an artifact file; an inline
    JSON output stored before previews were gets one made from its JSON, which runs no code."""
    kind = stored_kind(row)
    text = row.get("preview")
    name = row.get("type_name")
    if text is None and row.get("value_json") is not None:
        try:
            value = json.loads(row["value_json"])
        except ValueError:
            value = None
        else:
            text, name = make_preview(value), type_name(value)
    return OutputPreview(kind, name, row.get("size"), text)


def read_stored(row: Mapping[str, Any], artifact: Path | None = None) -> EncodedOutput | None:
    """The encoded output of a row, as (kind, data), without decoding it; None when its artifact
    file is gone. ``artifact`` is the row's file as the caller resolved (and checked) it."""
    kind = stored_kind(row)
    if row.get("value_json") is not None:
        data: str | bytes = row["value_json"]
    elif row.get("artifact_path") or artifact is not None:
        path = artifact if artifact is not None else Path(row["artifact_path"])
        try:
            data = path.read_text("utf-8") if kind == "json" else path.read_bytes()
        except FileNotFoundError:
            return None
    else:
        return None
    size = row.get("size")
    return EncodedOutput(kind or "pickle", data, size if size is not None else len(data),
                         row.get("type_name") or "", row.get("preview") or "")


@dataclass(frozen=True)
class KeptOutput:
    """What ``run.outputs`` holds for an output kept on the Dask cluster: its dataset name there and
    what the store knows of it. ``get(client)`` reads the value while the cluster still holds it
    (until its run ends)."""

    name: str
    type_name: str
    size: int
    preview: str

    def get(self, client: Any) -> Any:
        """The value, read from the cluster of ``client`` (a ``distributed.Client``)."""
        kind, data = client.get_dataset(self.name).result()
        return decode(kind, data)

    def __repr__(self) -> str:
        return (f"<output kept on the Dask cluster as {self.name!r}: {self.type_name} · {self.size:,} bytes · "
                f"{self.preview[:200]}>")


def load_value(row: Mapping[str, Any]) -> tuple[bool, Any]:
    """(found, the Python value) of a stored output: unpickles, so only for processes that need
    the value (a downstream task, ``run.outputs``); views use :func:`stored_preview`. An output
    kept on the Dask cluster gives a :class:`KeptOutput`, which says so and can read it there."""
    encoded = read_stored(row)
    if encoded is None:
        return False, None
    if encoded.kind == CLUSTER:
        return True, KeptOutput(str(encoded.data), encoded.type_name, encoded.size, encoded.preview)
    return True, encoded.decode()


def load_json(row: Mapping[str, Any], artifact: Path | None = None) -> tuple[bool, Any]:
    """(found, value) of a JSON output, read as JSON; (False, None) for a pickle, which is not read."""
    if stored_kind(row) != "json":
        return False, None
    encoded = read_stored(row, artifact)
    return (False, None) if encoded is None else (True, json.loads(encoded.data))
