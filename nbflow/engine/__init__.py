"""The engine: everything that turns DAGs into runs and runs into outcomes in the store.

One run lifecycle lives here: loading DAG files (``discovery``, ``dagparsing``), recording DAGs in
the store (``sync``), creating runs and their task rows (``lifecycle``), driving a run's decisions
(``driver``, with the pure ``outcomes`` decision over the state table), running one task instance
where an executor put it (``runner``, ``logcapture``), the hosts' loop (``scheduler``, which
``dag.test()`` and backfills drive for their own runs through ``runs``), surviving the store going
away (``outage``), pools, and what a person does by hand (``controls``). ``ARCHITECTURE.md`` at
the repository's root draws the whole picture.

Importing this package imports nothing else: each module is imported where it is used.
"""
