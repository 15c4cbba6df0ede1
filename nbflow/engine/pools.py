"""Pools: named limits on how many task slots run at once, across DAGs and hosts.

A task names its pool (``pool="warehouse"``, default ``default_pool``) and how many slots it takes
(``pool_slots``). Pools are defined in the store (``nbflow pools set NAME SLOTS``); a pool that is
not defined does not limit. Occupancy is read from the store (what every host runs) and kept up to
date locally between reads.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nbflow.store import Store


class PoolSlots:
    def __init__(self, limits: dict[str, int] | None = None, occupied: dict[str, int] | None = None) -> None:
        self.limits = dict(limits or {})
        self.occupied = dict(occupied or {})
        self._lock = threading.Lock()

    @classmethod
    def load(cls, store: Store) -> PoolSlots:
        rows = store.list_pools()
        return cls({r["name"]: r["slots"] for r in rows}, {r["name"]: r["occupied"] for r in rows})

    def refresh(self, store: Store) -> None:
        fresh = PoolSlots.load(store)
        with self._lock:
            self.limits, self.occupied = fresh.limits, fresh.occupied

    def admit(self, pool: str, slots: int = 1) -> bool:
        """Take ``slots`` of ``pool`` if they are free. A task wider than its whole pool may run
        when the pool is empty, rather than never."""
        with self._lock:
            limit = self.limits.get(pool)
            used = self.occupied.get(pool, 0)
            if limit is not None and used + slots > limit and used > 0:
                return False
            self.occupied[pool] = used + slots
            return True

    def release(self, pool: str, slots: int = 1) -> None:
        with self._lock:
            self.occupied[pool] = max(0, self.occupied.get(pool, 0) - slots)

    def free(self, pool: str) -> int | None:
        limit = self.limits.get(pool)
        return None if limit is None else max(0, limit - self.occupied.get(pool, 0))
