"""Lookups over intent locks (their machine columns live in `intent_locks`)."""
from __future__ import annotations

import sqlite3

from storage.rows import decoded

LIVE = ("pending", "outranked", "committed", "executing")
FINISHED = ("executed", "aborted", "expired", "failed")


def _rows(cursor) -> list[dict]:
    return decoded(cursor, "data")


def holding(conn: sqlite3.Connection, intent_type: str, target: str,
            now: float) -> list[dict]:
    """Intents that hold the lock on a target: live ones, and executed ones whose lock
    window (`expires_at`, when peers' copies of it expire) has not passed."""
    marks = ", ".join("?" for _ in LIVE)
    return _rows(conn.execute(
        f"""SELECT intent_id, intent_type, target, initiator, state, data FROM intent_locks
            WHERE intent_type = ? AND target = ?
              AND (state IN ({marks}) OR (state = 'executed' AND expires_at > ?))
            ORDER BY created_at""", (intent_type, target, *LIVE, now)))


def live_count_by(conn: sqlite3.Connection, initiator: str) -> int:
    marks = ", ".join("?" for _ in LIVE)
    return conn.execute(f"SELECT COUNT(*) FROM intent_locks WHERE initiator = ? "
                        f"AND state IN ({marks})", (initiator, *LIVE)).fetchone()[0]


def created_since_by(conn: sqlite3.Connection, initiator: str, since: float) -> int:
    return conn.execute("SELECT COUNT(*) FROM intent_locks WHERE initiator = ? "
                        "AND created_at >= ?", (initiator, since)).fetchone()[0]


def trim_finished(conn: sqlite3.Connection, initiator: str, keep: int) -> int:
    """Keep only the `keep` most recent finished intents of one initiator."""
    marks = ", ".join("?" for _ in FINISHED)
    return conn.execute(
        f"""DELETE FROM intent_locks WHERE intent_id IN (
                SELECT intent_id FROM intent_locks WHERE initiator = ? AND state IN ({marks})
                ORDER BY state_since DESC LIMIT -1 OFFSET ?)""",
        (initiator, *FINISHED, keep)).rowcount


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


def delete_finished(conn: sqlite3.Connection, finished_before: float, now: float) -> int:
    """Remove intents that ended before `finished_before` and no longer hold a lock (their
    window ended before `now`); their transitions stay in the log."""
    marks = ", ".join("?" for _ in FINISHED)
    return conn.execute(f"DELETE FROM intent_locks WHERE state IN ({marks}) "
                        f"AND state_since < ? AND expires_at <= ?",
                        (*FINISHED, finished_before, now)).rowcount
