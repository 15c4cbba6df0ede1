"""The metadata store: DAGs, runs, task instances, outputs, import errors and events.

``Store`` is the only way the rest of nbflow reaches the database. Opening one connects lazily;
importing this package touches no database.
"""

from __future__ import annotations

from nbflow.store.store import Store, open_store

__all__ = ["Store", "open_store"]
