"""Optional imports that cost more than they give in nbflow's own processes.

jsonschema loads ``rfc3987_syntax`` whenever it is installed (Jupyter's event schemas pull it in),
only to check the rarely used "iri" string formats, and that module builds a full RFC 3987 grammar
when imported: measured at 1.3–2.7 s of CPU here, more than starting a kernel. Every notebook task
imports jsonschema (papermill → nbformat), and so do DAG params. In processes nbflow starts itself
(its commands, its worker processes) the module is marked as absent before anything imports
jsonschema, which then simply does without the "iri" checks; nbflow validates no such format.
Kernels and the Jupyter server belong to the user and are left as they are.
"""

from __future__ import annotations

import sys

#: modules imported only for checks nbflow never makes, with a measured import cost
SKIPPED = ("rfc3987_syntax",)


def skip_costly_optional_imports() -> None:
    """Make the :data:`SKIPPED` modules look absent (an ``import`` of them raises ImportError),
    unless something in this process has imported them already."""
    for name in SKIPPED:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None: "not importable"
