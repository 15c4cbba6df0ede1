"""The rest of the API: import errors, the scheduler hosts, cron expressions checked and phrased,
the time zones there are, and the events a client polls to hear about failed runs."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from nbflow.errors import InvalidRequestError, NotFoundError, ScheduleError
from nbflow.jupyter.server import serialize as out
from nbflow.jupyter.server.base import NbflowHandler

if TYPE_CHECKING:
    from nbflow.jupyter.server.services import Services

#: at most this many events in one answer; the client asks again from the last id
EVENTS_PER_PAGE = 200
#: the scheduler hosts listed, newest first
HOSTS_LISTED = 50


def import_errors(services: Services) -> dict[str, Any]:
    services.catalog.scan()
    return {"import_errors": [out.import_error(e) for e in services.store.list_import_errors()]}


def scheduler_status(services: Services) -> dict[str, Any]:
    """The hosts the store knows, and whether one will pick up a queued run."""
    from nbflow.engine import controls
    from nbflow.engine.scheduler import pid_alive

    store, settings = services.store, services.settings
    hosts = store.list_hosts()[:HOSTS_LISTED]
    stale = datetime.now(UTC) - timedelta(seconds=settings.host_stale_after)
    here = socket.gethostname()
    beating = {h["host_id"] for h in hosts if h["state"] == "running" and h["heartbeat_at"] is not None
               and h["heartbeat_at"] >= stale and (h["hostname"] != here or pid_alive(h["pid"]))}
    live = controls.live_schedulers(store, settings=settings)
    return {"alive": bool(live), "in_server": services.host.running,
            "hosts": [out.host(h, beating) for h in hosts]}


#: what the schedule dialog's field takes (not the timedeltas and None of the Python API)
CRON_FIELD_TAKES = ("Type a cron expression ('minute hour day-of-month month day-of-week', e.g. '0 6 * * *') "
                    "or a preset such as @hourly, @daily, @weekly, @monthly or @yearly.")


def for_cron_field(error: ScheduleError) -> ScheduleError:
    """The same refusal, saying what the schedule dialog's cron field takes."""
    return ScheduleError(error.schedule, error.problem, error.dag_id, field=error.field, accepts=CRON_FIELD_TAKES)


def cron(services: Services, expression: str, timezone: str | None, n: int) -> dict[str, Any]:
    """A cron expression checked (a bad field is a 400 naming it), phrased and run forward."""
    from nbflow.timetables import CronTimetable, next_runs, resolve_timezone, timezone_name

    zone = resolve_timezone(timezone or services.settings.default_timezone or None)
    try:
        timetable = CronTimetable(expression, zone)
    except ScheduleError as exc:
        raise for_cron_field(exc) from None
    utc, local = out.times(next_runs(timetable, n), zone)
    return {"expression": timetable.expression, "timezone": timezone_name(zone),
            "description": out.cron_words(timetable.expression, timetable.description),
            "next_runs": utc, "next_runs_local": local}


def timezones(services: Services) -> dict[str, Any]:
    import zoneinfo

    from nbflow.timetables import resolve_timezone, timezone_name

    default = timezone_name(resolve_timezone(services.settings.default_timezone or None))
    names = sorted(zone for zone in zoneinfo.available_timezones() if "/" in zone or zone == "UTC")
    return {"default": default, "timezones": names}


def events(services: Services, after: int | None, kinds: list[str] | None) -> dict[str, Any]:
    """Events after id ``after``. Without ``after``, only where history ends (``last_id``), so that a
    new page does not announce every failure of the past; ``after=0`` is the very beginning, so a
    poller that started on an empty store still hears of the first failure."""
    store = services.store
    last = store.last_event_id()
    if after is None or after >= last:
        return {"events": [], "last_id": last}
    rows = store.events_after(after, through=last, kinds=kinds, limit=EVENTS_PER_PAGE)
    next_after = rows[-1]["id"] if len(rows) == EVENTS_PER_PAGE else last
    return {"events": [out.event(r) for r in rows], "last_id": next_after}


# -- handlers ---------------------------------------------------------------------------------------


class ImportErrorsHandler(NbflowHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(await self.services.call(import_errors, self.services))


class SchedulerHandler(NbflowHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(await self.services.call(scheduler_status, self.services))


class CronHandler(NbflowHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        expression = self.get_argument("expression", "").strip()
        if not expression:
            raise InvalidRequestError("give the cron expression to check: ?expression=0 6 * * *")
        n = self.int_argument("n", 5, low=0, high=100)
        timezone = self.get_argument("timezone", None) or None
        self.reply(await self.services.call(cron, self.services, expression, timezone, n))


class TimezonesHandler(NbflowHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(await self.services.call(timezones, self.services))


class EventsHandler(NbflowHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        after = self.int_argument("after", -1, low=0, high=2**62) if self.get_argument("after", "") else None
        kind = self.get_argument("kind", None)
        kinds = [k.strip() for k in kind.split(",") if k.strip()] if kind else None
        self.reply(await self.services.call(events, self.services, after, kinds))


class UnknownHandler(NbflowHandler):
    """Any other path under the API: a JSON 404 that says where the endpoints are listed."""

    @web.authenticated
    @authorized
    async def get(self, path: str) -> None:
        raise NotFoundError(f"there is no nbflow API endpoint '{path}'; the endpoints are listed in the "
                            "JupyterLab section of nbflow's README")

    post = patch = put = delete = get
