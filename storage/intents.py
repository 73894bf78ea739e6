"""Lookups over intent locks (their machine columns live in `intent_locks`)."""
from __future__ import annotations

import sqlite3

from storage.rows import decoded

LIVE = ("pending", "committed", "executing")
FINISHED = ("executed", "aborted", "expired", "failed")


def _rows(cursor) -> list[dict]:
    return decoded(cursor, "data")


def holding(conn: sqlite3.Connection, intent_type: str, target: str,
            executed_since: float) -> list[dict]:
    """Intents that hold the lock on a target: live ones, and ones executed since
    `executed_since` (a target just acted on stays locked for a while)."""
    marks = ", ".join("?" for _ in LIVE)
    return _rows(conn.execute(
        f"""SELECT intent_id, intent_type, target, initiator, state, data FROM intent_locks
            WHERE intent_type = ? AND target = ?
              AND (state IN ({marks}) OR (state = 'executed' AND state_since >= ?))
            ORDER BY created_at""", (intent_type, target, *LIVE, executed_since)))


def count_by(conn: sqlite3.Connection, initiator: str) -> int:
    """Every intent of one initiator that we still hold a row for (finished ones are kept
    an hour), so a peer cannot cycle intents past a limit on live ones."""
    return conn.execute("SELECT COUNT(*) FROM intent_locks WHERE initiator = ?",
                        (initiator,)).fetchone()[0]


def in_state(conn: sqlite3.Connection, state: str) -> list[dict]:
    return _rows(conn.execute(
        "SELECT intent_id, intent_type, target, initiator, state, data FROM intent_locks "
        "WHERE state = ? ORDER BY created_at", (state,)))


def listing(conn: sqlite3.Connection) -> list[dict]:
    return _rows(conn.execute(
        """SELECT intent_id, intent_type, target, initiator, state, deadline, deadline_trigger,
                  created_at, state_since, data FROM intent_locks ORDER BY created_at"""))


def exists(conn: sqlite3.Connection, intent_id: str) -> bool:
    return conn.execute("SELECT 1 FROM intent_locks WHERE intent_id = ?",
                        (intent_id,)).fetchone() is not None


def delete_finished(conn: sqlite3.Connection, before: float) -> int:
    """Remove intents that ended before `before` (their transitions stay in the log)."""
    marks = ", ".join("?" for _ in FINISHED)
    return conn.execute(f"DELETE FROM intent_locks WHERE state IN ({marks}) "
                        f"AND state_since < ?", (*FINISHED, before)).rowcount
