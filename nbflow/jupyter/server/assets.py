"""``assets`` and ``assets/events``: the assets with their newest event and the DAGs that produce
and consume them, and an asset event recorded from outside (a file landed, an upstream system
finished), which starts the DAGs scheduled on that asset as a task's outlet would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from nbflow.assets import check_extra, check_uri
from nbflow.errors import InvalidRequestError
from nbflow.jupyter.server.base import NbflowHandler
from nbflow.store.queries import assets_overview

if TYPE_CHECKING:
    from nbflow.jupyter.server.services import Services


def list_assets(services: Services) -> dict[str, Any]:
    return {"assets": assets_overview(services.store)}


def emit_event(services: Services, body: dict[str, Any]) -> dict[str, Any]:
    """Record one event of ``body["uri"]`` with ``body["extra"]``; the answer is the event."""
    unknown = sorted(set(body) - {"uri", "extra"})
    if unknown:
        raise InvalidRequestError(f"{', '.join(map(repr, unknown))} is not a field of an asset event; send "
                                  '{"uri": "...", "extra": {...}}')
    if "uri" not in body:
        raise InvalidRequestError('an asset event needs its asset: send {"uri": "s3://bucket/key"}')
    uri = check_uri(body["uri"])
    extra = check_extra(body.get("extra"))
    event = services.store.emit_asset_event(uri, source="api", extra=extra)
    scheduler = services.host.scheduler
    if scheduler is not None:  # this server's own host starts the consumers at once
        scheduler.assets_changed()
    return {"event": event}


class AssetsHandler(NbflowHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(await self.services.call(list_assets, self.services))


class AssetEventsHandler(NbflowHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body()
        self.reply(await self.services.call(emit_event, self.services, body), status=201)
