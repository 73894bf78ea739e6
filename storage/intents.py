"""Lookups over intent locks (their machine columns live in `intent_locks`).

Which states hold a lock or are finished is the intent_lock table's to say: callers pass
those groups in (`holding` states, `finished` states), storage imports no machine."""
from __future__ import annotations

import sqlite3

from storage.rows import decoded


def _rows(cursor) -> list[dict]:
    return decoded(cursor, "data")


def holding(conn: sqlite3.Connection, intent_type: str, target: str, now: float,
            holding_states: tuple[str, ...]) -> list[dict]:
    """Intents that hold the lock on a target: live ones, and executed ones whose lock
    window (`expires_at`, when peers' copies of it expire) has not passed."""
    marks = ", ".join("?" for _ in holding_states)
    return _rows(conn.execute(
        f"""SELECT lock_id, intent_id, intent_type, target, initiator, state, data
            FROM intent_locks
            WHERE intent_type = ? AND target = ?
              AND (state IN ({marks}) OR (state = 'executed' AND expires_at > ?))
            ORDER BY created_at""", (intent_type, target, *holding_states, now)))


def live_count_by(conn: sqlite3.Connection, initiator: str,
                  holding_states: tuple[str, ...]) -> int:
    marks = ", ".join("?" for _ in holding_states)
    return conn.execute(f"SELECT COUNT(*) FROM intent_locks WHERE initiator = ? "
                        f"AND state IN ({marks})", (initiator, *holding_states)).fetchone()[0]


def created_since_by(conn: sqlite3.Connection, initiator: str, since: float) -> int:
    return conn.execute("SELECT COUNT(*) FROM intent_locks WHERE initiator = ? "
                        "AND created_at >= ?", (initiator, since)).fetchone()[0]


def trim_finished(conn: sqlite3.Connection, initiator: str, keep: int,
                  finished: tuple[str, ...]) -> int:
    """Keep only the `keep` most recent finished intents of one initiator."""
    marks = ", ".join("?" for _ in finished)
    return conn.execute(
        f"""DELETE FROM intent_locks WHERE lock_id IN (
                SELECT lock_id FROM intent_locks WHERE initiator = ? AND state IN ({marks})
                ORDER BY state_since DESC LIMIT -1 OFFSET ?)""",
        (initiator, *finished, keep)).rowcount


def in_state(conn: sqlite3.Connection, state: str) -> list[dict]:
    return _rows(conn.execute(
        "SELECT lock_id, intent_id, intent_type, target, initiator, state, data "
        "FROM intent_locks WHERE state = ? ORDER BY created_at", (state,)))


def listing(conn: sqlite3.Connection) -> list[dict]:
    return _rows(conn.execute(
        """SELECT lock_id, intent_id, intent_type, target, initiator, state, deadline,
                  deadline_trigger, created_at, state_since, data
           FROM intent_locks ORDER BY created_at"""))


def delete_finished(conn: sqlite3.Connection, finished_before: float, now: float,
                    finished: tuple[str, ...]) -> int:
    """Remove intents that ended before `finished_before` and no longer hold a lock (their
    window ended before `now`); their transitions stay in the log."""
    marks = ", ".join("?" for _ in finished)
    return conn.execute(f"DELETE FROM intent_locks WHERE state IN ({marks}) "
                        f"AND state_since < ? AND expires_at <= ?",
                        (*finished, finished_before, now)).rowcount
