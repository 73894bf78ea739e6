"""`hive-status` and `hive-diagram`: read-only views for the operator."""
from __future__ import annotations

from pyln.client import RpcException

from handlers import __version__
from handlers.frame.errors import INVALID_PARAMS
from machines import SPECS
from machines.diagram import mermaid
from storage import machine_rows, outbox


def status(db, config) -> dict:
    counts = machine_rows.counts(db.conn())
    return {
        "version": __version__,
        "governance_mode": config.governance_mode,
        "db_path": config.db_path,
        "schema_version": db.schema_version(),
        "machines": {kind: counts.get(kind, {}) for kind in sorted(SPECS)},
        "outbox_pending": outbox.pending_count(db.conn()),
    }


def diagram(machine) -> dict:
    if not isinstance(machine, str) or machine not in SPECS:
        raise RpcException(f"machine: unknown machine {machine!r}; expected one of "
                           + ", ".join(sorted(SPECS)), INVALID_PARAMS)
    return {"machine": machine, "mermaid": mermaid(SPECS[machine])}
