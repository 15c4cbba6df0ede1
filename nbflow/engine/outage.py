"""What a scheduler host knows about its store's availability, and what it says about it.

A database that stops answering for a while (a server restarting, a connection dropped, a SQLite file
held by another writer) is a condition a host waits out, not a reason to exit: its running tasks go
on, their outcomes wait in memory, and the store is tried again with a growing delay. The host says
so once when the outage starts, once if it lasts past ``db_outage_grace`` (from then on it claims no
new work and creates no run), and once when the store answers again, with how long it was away.

:class:`StoreOutage` holds that state and the lines; the scheduler decides what to do with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("nbflow.engine.scheduler")

#: first delay before the store is tried again, doubled after each failure up to MAX_DELAY
FIRST_DELAY = 0.1
MAX_DELAY = 5.0


class StoreOutage:
    """The store as one host sees it: answering, or not since a given moment.

    ``clock`` is ``time.monotonic`` unless a test steps time itself.
    """

    def __init__(self, host_id: str, grace: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.host_id = host_id
        self.grace = grace
        self._clock = clock
        self.since: float | None = None         # when the current outage started
        self.failures = 0                        # failed attempts in the current outage
        self.claiming = True                     # False once an outage outlasts the grace
        self.last_length = 0.0                   # how long the last outage lasted
        self.ended_at: float | None = None       # when the last outage ended
        self.last_error: BaseException | None = None

    @property
    def down(self) -> bool:
        return self.since is not None

    def length(self) -> float:
        """Seconds the current outage has lasted (0 when the store answers)."""
        return 0.0 if self.since is None else self._clock() - self.since

    def failed(self, error: BaseException) -> float:
        """The store failed once more with ``error``; return how long to wait before trying again."""
        now = self._clock()
        if self.since is None:
            self.since, self.failures = now, 0
            log.warning(
                "scheduler %s: store unreachable (%s); running tasks go on and their outcomes wait in memory "
                "until it answers (retrying; db_outage_grace %g s)", self.host_id, error, self.grace,
            )
        self.failures += 1
        self.last_error = error
        if self.claiming and now - self.since >= self.grace:
            self.claiming = False
            log.warning(
                "scheduler %s: store unreachable for %.1f s, past db_outage_grace (%g s): stopped claiming new "
                "work and creating runs until it answers; running tasks go on", self.host_id, now - self.since,
                self.grace,
            )
        return self.delay()

    def delay(self) -> float:
        """How long to wait before trying the store again: doubling from FIRST_DELAY to MAX_DELAY."""
        return min(MAX_DELAY, FIRST_DELAY * 2 ** max(0, self.failures - 1))

    def recovered(self) -> None:
        """The store answered: end the outage, if there was one, and say how long it lasted."""
        if self.since is None:
            return
        now = self._clock()
        self.last_length, self.ended_at = now - self.since, now
        resumed = "" if self.claiming else "; resumes claiming new work"
        log.warning("scheduler %s: store reachable again after %.1f s; what waited in memory is written%s",
                    self.host_id, self.last_length, resumed)
        self.since, self.failures, self.claiming = None, 0, True

    def heartbeat_credit(self, stale_after: float, heartbeat_interval: float) -> float:
        """Seconds to forgive in other hosts' heartbeats: they could not beat while the store was away
        either, so right after an outage a silence that long is no sign of death, nor is the time a
        live host takes to notice that the store is back (its own retry delay) and beat. Forgiven until
        every live host has had that time."""
        if self.ended_at is None:
            return 0.0
        grace_to_beat = MAX_DELAY + heartbeat_interval
        if self._clock() - self.ended_at < stale_after + grace_to_beat:
            return self.last_length + grace_to_beat
        return 0.0
