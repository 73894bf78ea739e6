"""Lookups over pending actions (their machine columns live in `pending_actions`).

Which states are which is the pending_action table's to say: callers pass them in."""
from __future__ import annotations

import sqlite3

from storage.rows import decoded

_COLUMNS = """action_id, action_type, target, amount_sat, origin, mode, approved_by,
              approved_at, state, deadline, deadline_trigger, created_at, state_since, data"""


def approved_since(conn: sqlite3.Connection, approved_by: str, since: float) -> tuple[int, int]:
    """(sats, actions) approved by `approved_by` at or after `since`, whatever became of
    them later (an approval spends the budget even if its execution failed)."""
    row = conn.execute(
        """SELECT COALESCE(SUM(COALESCE(amount_sat, 0)), 0), COUNT(*) FROM pending_actions
           WHERE approved_by = ? AND approved_at >= ?""", (approved_by, since)).fetchone()
    return int(row[0]), int(row[1])


def record_mode(conn: sqlite3.Connection, action_id: str, mode: str) -> None:
    conn.execute("UPDATE pending_actions SET mode = ? WHERE action_id = ?", (mode, action_id))


def record_approval(conn: sqlite3.Connection, action_id: str, approved_by: str,
                    at: float) -> None:
    conn.execute("UPDATE pending_actions SET approved_by = ?, approved_at = ? "
                 "WHERE action_id = ?", (approved_by, at, action_id))


def get(conn: sqlite3.Connection, action_id: str) -> dict | None:
    rows = decoded(conn.execute(f"SELECT {_COLUMNS} FROM pending_actions WHERE action_id = ?",
                                (action_id,)), "data")
    return rows[0] if rows else None


def listing(conn: sqlite3.Connection, state: str | None = None, limit: int = 500) -> list[dict]:
    if state is None:
        cur = conn.execute(f"SELECT {_COLUMNS} FROM pending_actions "
                           "ORDER BY created_at DESC LIMIT ?", (limit,))
    else:
        cur = conn.execute(f"SELECT {_COLUMNS} FROM pending_actions WHERE state = ? "
                           "ORDER BY created_at DESC LIMIT ?", (state, limit))
    return decoded(cur, "data")


def in_states(conn: sqlite3.Connection, states: tuple[str, ...]) -> list[dict]:
    marks = ", ".join("?" for _ in states)
    return decoded(conn.execute(f"SELECT {_COLUMNS} FROM pending_actions "
                                f"WHERE state IN ({marks}) ORDER BY created_at", states),
                   "data")


def executed_on(conn: sqlite3.Connection, kind: str, target: str) -> bool:
    """Whether an action of `kind` on `target` has executed (e.g. the operator's
    clboss_ignore, whose tag the planner must leave in place)."""
    return conn.execute("SELECT 1 FROM pending_actions WHERE action_type = ? AND target = ? "
                        "AND state = 'executed' LIMIT 1", (kind, target)).fetchone() is not None
