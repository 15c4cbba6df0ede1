"""Assets: the data a task makes, named by URI, and the conditions a DAG can be scheduled on.

A task names what it produces with ``outlets=[Asset(...)]``; each success of it records one asset
event in the store. A DAG with ``schedule=asset`` (or ``[a, b]``, or ``a & (b | c)``, or
:class:`AssetOrTimeSchedule`) gets a run when its condition holds over the events that are newer
than its last asset-triggered run. This module is the model only: what an asset and a condition are,
checked when written; recording events and creating runs belong to the store and the engine.
``Dataset`` is Airflow 2's name for ``Asset``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from nbflow.errors import InvalidAssetError

__all__ = ["Asset", "AssetAll", "AssetAny", "AssetOrTimeSchedule", "BaseAsset", "Dataset", "as_condition",
           "check_extra", "check_outlets"]

#: the store keeps URIs in an indexed column of this length
MAX_URI_LENGTH = 500
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_FORBIDDEN = re.compile(r"[\s\x00-\x1f\x7f]")


def check_uri(uri: Any) -> str:
    """``uri`` as an asset's key: a URI with a scheme (``s3://bucket/key``, ``file:///data/x.csv``)
    or a plain name (``sales``). Anything else raises :class:`InvalidAssetError` saying why, so
    two spellings that would never match each other are refused where they are written."""
    if not isinstance(uri, str):
        raise InvalidAssetError(uri, f"a URI is a string, not a {type(uri).__name__}; write Asset('s3://bucket/key') "
                                "or Asset('name')")
    if not uri:
        raise InvalidAssetError(uri, "it is empty; give a URI such as 's3://bucket/key' or a plain name")
    if len(uri) > MAX_URI_LENGTH:
        raise InvalidAssetError(uri[:60] + "...", f"it is longer than {MAX_URI_LENGTH} characters")
    if _FORBIDDEN.search(uri):
        raise InvalidAssetError(uri, "it holds a space or a control character; percent-encode it (%20) "
                                "or choose another name")
    if ":" in uri:
        scheme, _, _ = uri.partition(":")
        if not _SCHEME.fullmatch(scheme):
            raise InvalidAssetError(uri, f"{scheme!r} is not a URI scheme (a letter, then letters, digits, "
                                    "+ - .); write 'scheme://...' or a plain name without ':'")
        try:
            parts = urlsplit(uri)
        except ValueError as exc:
            raise InvalidAssetError(uri, str(exc)) from exc
        if not (parts.netloc or parts.path.strip("/")):
            raise InvalidAssetError(uri, "it has a scheme and nothing after it; name the data, e.g. "
                                    f"'{scheme}://bucket/key'")
    return uri


def check_extra(extra: Any, what: str = "extra") -> dict[str, Any]:
    """``extra`` as stored: a JSON object (``None`` is ``{}``); anything else raises saying so."""
    if extra is None:
        return {}
    if not isinstance(extra, Mapping) or not all(isinstance(k, str) for k in extra):
        raise InvalidAssetError(extra, f"{what} must be a dict with text keys (a JSON object)")
    try:
        return json.loads(json.dumps(dict(extra), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidAssetError(extra, f"{what} must hold JSON values only ({exc})") from exc


class BaseAsset:
    """An asset condition: an :class:`Asset`, or ``&`` / ``|`` of conditions."""

    def __and__(self, other: BaseAsset) -> AssetAll:
        if not isinstance(other, BaseAsset):
            return NotImplemented
        return AssetAll(self, other)

    def __or__(self, other: BaseAsset) -> AssetAny:
        if not isinstance(other, BaseAsset):
            return NotImplemented
        return AssetAny(self, other)

    def uris(self) -> tuple[str, ...]:
        """Every URI the condition names, in the order written, each once."""
        raise NotImplementedError

    def holds(self, updated: Collection[str]) -> bool:
        """Whether the condition is met when the assets ``updated`` have new events."""
        raise NotImplementedError

    def expression(self) -> str:
        """The condition as written, e.g. ``s3://a & (b | c)``: what views show."""
        raise NotImplementedError

    def to_json(self) -> Any:
        """Plain data for the store: a URI, or ``{"all": [...]}`` / ``{"any": [...]}``."""
        raise NotImplementedError


class Asset(BaseAsset):
    """Data named by a URI (or a plain name). Two assets are the same asset when their URIs are equal;
    ``extra`` is free JSON describing it, kept in the store, never part of its identity."""

    __slots__ = ("extra", "uri")

    def __init__(self, uri: str, extra: Mapping[str, Any] | None = None) -> None:
        self.uri: str = check_uri(uri)
        self.extra: dict[str, Any] = check_extra(extra)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Asset) and other.uri == self.uri

    def __hash__(self) -> int:
        return hash(("Asset", self.uri))

    def __repr__(self) -> str:
        return f"Asset({self.uri!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Asset, (self.uri, self.extra or None))

    def uris(self) -> tuple[str, ...]:
        return (self.uri,)

    def holds(self, updated: Collection[str]) -> bool:
        return self.uri in updated

    def expression(self) -> str:
        return self.uri

    def to_json(self) -> Any:
        return self.uri


#: Airflow 2's name for an asset
Dataset = Asset


class _Group(BaseAsset):
    """Conditions joined by one operator; nested groups of the same kind are flattened."""

    symbol = ""
    key = ""

    def __init__(self, *members: BaseAsset) -> None:
        flat: list[BaseAsset] = []
        for member in members:
            if not isinstance(member, BaseAsset):
                raise InvalidAssetError(member, f"{type(self).__name__} joins assets and asset conditions, "
                                        f"not a {type(member).__name__}")
            flat.extend(member.members if type(member) is type(self) else (member,))  # type: ignore[attr-defined]
        if not flat:
            raise InvalidAssetError([], f"{type(self).__name__} needs at least one asset")
        self.members: tuple[BaseAsset, ...] = tuple(flat)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.members == self.members  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.members))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self.members))})"

    def uris(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(uri for member in self.members for uri in member.uris()))

    def expression(self) -> str:
        parts = [m.expression() if isinstance(m, Asset) or len(getattr(m, "members", ())) < 2
                 else f"({m.expression()})" for m in self.members]
        return f" {self.symbol} ".join(parts)

    def to_json(self) -> Any:
        return {self.key: [m.to_json() for m in self.members]}


class AssetAll(_Group):
    """Met when every member is: ``a & b``, or ``schedule=[a, b]``."""

    symbol, key = "&", "all"

    def holds(self, updated: Collection[str]) -> bool:
        return all(m.holds(updated) for m in self.members)


class AssetAny(_Group):
    """Met when any member is: ``a | b``."""

    symbol, key = "|", "any"

    def holds(self, updated: Collection[str]) -> bool:
        return any(m.holds(updated) for m in self.members)


def is_asset_schedule(value: Any) -> bool:
    """Whether ``value`` given as a DAG's schedule means assets (so not time)."""
    if isinstance(value, BaseAsset):
        return True
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, BaseAsset) for v in value)


def as_condition(value: Any, dag_id: str | None = None, option: str = "schedule") -> BaseAsset:
    """The asset condition ``value`` stands for: an asset or a condition as it is, a non-empty list of
    them as all of them; anything else raises naming the DAG and the option."""
    if isinstance(value, BaseAsset):
        return value
    if isinstance(value, (list, tuple)) and value:
        bad = [v for v in value if not isinstance(v, BaseAsset)]
        if not bad:
            return value[0] if len(value) == 1 else AssetAll(*value)
        raise InvalidAssetError(bad[0], f"{option} lists assets, and this is a {type(bad[0]).__name__}; "
                                "write Asset('uri') for each", dag_id)
    raise InvalidAssetError(value, f"{option} needs an Asset, a list of them or a condition such as a & (b | c)",
                            dag_id)


class AssetOrTimeSchedule:
    """Runs on a time schedule and also whenever an asset condition holds, as in Airflow 3.

    ``timetable`` is anything a time schedule can be (a cron string, a preset, a timedelta, a
    Timetable); ``assets`` an asset, a list of them (all of them) or a condition. Time runs are
    ``scheduled``, asset runs ``asset_triggered``; each kind keeps its own pace.
    """

    def __init__(self, *, timetable: Any, assets: Any) -> None:
        if timetable is None or is_asset_schedule(timetable) or isinstance(timetable, AssetOrTimeSchedule):
            raise InvalidAssetError(timetable, "AssetOrTimeSchedule's timetable is a time schedule (a cron "
                                    "string, a preset, a timedelta or a Timetable); put the assets in assets=")
        self.timetable = timetable
        self.assets: BaseAsset = as_condition(assets, option="AssetOrTimeSchedule assets")

    def __repr__(self) -> str:
        return f"AssetOrTimeSchedule(timetable={self.timetable!r}, assets={self.assets!r})"


def check_outlets(value: Any, dag_id: str | None = None, task_id: str | None = None) -> tuple[Asset, ...]:
    """A task's outlets as a tuple of assets, each once; ``None`` is none. A condition or anything
    that is not an :class:`Asset` raises naming the task: an outlet is data the task writes."""
    if value is None:
        return ()
    items: Iterable[Any] = (value,) if isinstance(value, BaseAsset) else value
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(items, Iterable):
        raise InvalidAssetError(value, "outlets is a list of Asset('uri'), e.g. outlets=[Asset('s3://bucket/key')]",
                                dag_id, task_id)
    checked: list[Asset] = []
    for item in items:
        if not isinstance(item, Asset):
            raise InvalidAssetError(item, "each outlet is one Asset('uri') (conditions with & and | are for "
                                    "schedule=)", dag_id, task_id)
        if item not in checked:
            checked.append(item)
    return tuple(checked)
