"""nbflow's Jupyter server extension: a REST API for JupyterLab and a scheduler host in the server.

One module per job: :mod:`~.app` (the ``NbflowApp`` extension and its traitlets), :mod:`~.services`
(what the handlers share), :mod:`~.routes` (the URL table), one module of handlers per resource
(:mod:`~.dags`, :mod:`~.runs`, :mod:`~.tasks`, :mod:`~.notebooks`, :mod:`~.status`) on
:mod:`~.base` (authentication, JSON errors), :mod:`~.catalog` (DAG objects from their files),
:mod:`~.files` (serving files only from inside ``NBFLOW_HOME``), :mod:`~.serialize` (rows as JSON)
and :mod:`~.host` (the scheduler threads). Importing this package loads none of them.
"""

from __future__ import annotations
