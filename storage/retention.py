"""Retention: removing what is older than the operator's retention from the stores that
would otherwise only grow. Storage knows no machine: the terminal states of each kind
are passed in by the caller (from the machine specs)."""
from __future__ import annotations

import sqlite3

from storage.machine_rows import MACHINE_TABLES


def prune(conn: sqlite3.Connection, *, before: float,
          terminal: dict[str, tuple[str, ...]]) -> dict[str, int]:
    """Delete, in the caller's transaction: transition-log rows older than `before` (after
    moving the log's recorded cutoff there; see migration 4), instances of each kind in
    `terminal` that have sat in one of its terminal states since before `before`, and
    tickets that expired before `before` (a ticket still valid stays even when used, or
    it could be presented again). Returns the rows deleted per table."""
    counts: dict[str, int] = {}
    cutoff = conn.execute("SELECT cutoff FROM log_retention WHERE id = 1").fetchone()[0]
    if before > cutoff:
        conn.execute("UPDATE log_retention SET cutoff = ? WHERE id = 1", (before,))
    counts["transition_log"] = conn.execute(
        "DELETE FROM transition_log WHERE at < ?", (before,)).rowcount
    for kind, states in sorted(terminal.items()):
        table, _key = MACHINE_TABLES[kind]
        counts.setdefault(table, 0)
        if not states:
            continue
        marks = ", ".join("?" for _ in states)
        counts[table] += conn.execute(
            f"DELETE FROM {table} WHERE kind = ? AND state IN ({marks}) AND state_since < ?",
            (kind, *states, before)).rowcount
    counts["tickets"] = conn.execute(
        "DELETE FROM tickets WHERE expires_at < ?", (before,)).rowcount
    return counts
