"""``nbflow assets ...``: record that data was updated outside any task, and list the assets.

An event emitted here starts the DAGs scheduled on that asset like a task's outlet does: a running
scheduler host sees it at its next look at the store (``poll_interval``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from nbflow.cli.common import _open_store


def add_parsers(sub: Any) -> None:
    """The ``assets`` command group, on the top-level subparsers ``sub``."""
    assets = sub.add_parser("assets", help="emit asset events and list assets"
                            ).add_subparsers(dest="assets_command", required=True, metavar="ACTION")
    p = assets.add_parser("emit", help="record that an asset was updated: DAGs scheduled on it get a run")
    p.add_argument("uri", metavar="URI", help="the asset's URI (s3://bucket/key, file:///path) or name")
    p.add_argument("--extra", metavar="JSON", help='a JSON object kept with the event, e.g. {"rows": 120}')
    p.set_defaults(func=cmd_assets_emit)
    p = assets.add_parser("list", help="assets, their newest event, and the DAGs that produce and consume them")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_assets_list)


def parse_extra(text: str | None) -> dict[str, Any]:
    """``--extra`` as a dict; text that is not a JSON object is refused in one line."""
    from nbflow.assets import check_extra
    from nbflow.errors import InvalidAssetError

    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidAssetError(text, f"--extra is not JSON ({exc}); give an object such as '{{\"rows\": 120}}'") from exc
    return check_extra(value, "--extra")


def cmd_assets_emit(args: argparse.Namespace) -> int:
    from nbflow.assets import check_uri

    uri = check_uri(args.uri)
    extra = parse_extra(args.extra)
    with _open_store() as store:
        event = store.emit_asset_event(uri, source="cli", extra=extra)
    print(f"asset event {event['id']} recorded for {uri}")
    return 0


def cmd_assets_list(args: argparse.Namespace) -> int:
    from nbflow.store.queries import assets_overview

    with _open_store() as store:
        rows = assets_overview(store)
    if args.json:
        print(json.dumps(rows, default=str, indent=2))
        return 0
    if not rows:
        print("no assets: name one with outlets=[Asset(...)] or schedule=Asset(...), or emit an event")
        return 0
    for row in rows:
        last = row["last_event"]
        when = f"last event {last['created_at'].isoformat(timespec='seconds')} ({last['source']})" if last else "no event yet"
        producers = ", ".join(f"{p['dag_id']}.{p['task_id']}" for p in row["producers"]) or "-"
        consumers = ", ".join(row["consumers"]) or "-"
        print(f"{row['uri']}  {when}  produced by: {producers}  consumed by: {consumers}")
    return 0
