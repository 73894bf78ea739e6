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


def announced_since_by(conn: sqlite3.Connection, initiator: str, since: float) -> int:
    """One initiator's intents announced (their signed `created_at`) at or after `since`,
    whatever their state."""
    return conn.execute("SELECT COUNT(*) FROM intent_locks WHERE initiator = ? "
                        "AND announced_at >= ?", (initiator, since)).fetchone()[0]


def trim_finished(conn: sqlite3.Connection, initiator: str, keep: int,
                  finished: tuple[str, ...], announced_before: float) -> int:
    """Of one initiator's finished intents announced before `announced_before`, keep only
    the `keep` most recent."""
    marks = ", ".join("?" for _ in finished)
    return conn.execute(
        f"""DELETE FROM intent_locks WHERE lock_id IN (
                SELECT lock_id FROM intent_locks WHERE initiator = ? AND state IN ({marks})
                AND announced_at < ? ORDER BY state_since DESC LIMIT -1 OFFSET ?)""",
        (initiator, *finished, announced_before, keep)).rowcount


def states_by(conn: sqlite3.Connection, initiator: str) -> dict[str, str]:
    """intent_id -> state of every intent lock `initiator` announced (for checks from
    outside the plugin: plain tuples, whatever the connection's row factory)."""
    return {r[0]: r[1] for r in conn.execute(
        "SELECT intent_id, state FROM intent_locks WHERE initiator = ?", (initiator,))}


def by_initiator_in(conn: sqlite3.Connection, initiator: str,
                    states: tuple[str, ...]) -> list[dict]:
    marks = ", ".join("?" for _ in states)
    return _rows(conn.execute(
        f"SELECT lock_id, intent_id, intent_type, target, initiator, state, data "
        f"FROM intent_locks WHERE initiator = ? AND state IN ({marks}) ORDER BY created_at",
        (initiator, *states)))


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
                    finished: tuple[str, ...], announced_before: float) -> int:
    """Remove intents that ended before `finished_before`, no longer hold a lock (their
    window ended before `now`) and were announced before `announced_before` (older than
    any intake count); their transitions stay in the log."""
    marks = ", ".join("?" for _ in finished)
    return conn.execute(f"DELETE FROM intent_locks WHERE state IN ({marks}) "
                        f"AND state_since < ? AND expires_at <= ? AND announced_at < ?",
                        (*finished, finished_before, now, announced_before)).rowcount


# -- acknowledgements: the one intent per (type, target) this member vouches for ----------
def acked(conn: sqlite3.Connection, intent_type: str, target: str, now: float) -> str | None:
    """The lock id of the intent we acknowledged on this target, while that still binds."""
    row = conn.execute("SELECT lock_id FROM intent_acks WHERE intent_type = ? AND target = ? "
                       "AND until > ?", (intent_type, target, now)).fetchone()
    return None if row is None else row[0]


def ack(conn: sqlite3.Connection, intent_type: str, target: str, lock_id: str, now: float,
        until: float) -> None:
    """Record our acknowledgement; the caller checked `acked` is None in this transaction."""
    conn.execute("INSERT OR REPLACE INTO intent_acks (intent_type, target, lock_id, acked_at, "
                 "until) VALUES (?, ?, ?, ?, ?)", (intent_type, target, lock_id, now, until))


def release_ack(conn: sqlite3.Connection, lock_id: str) -> int:
    """The intent can no longer commit (its initiator aborted it): our word is free."""
    return conn.execute("DELETE FROM intent_acks WHERE lock_id = ?", (lock_id,)).rowcount


def delete_lapsed_acks(conn: sqlite3.Connection, now: float) -> int:
    return conn.execute("DELETE FROM intent_acks WHERE until <= ?", (now,)).rowcount


def all_acks(conn: sqlite3.Connection) -> list[tuple]:
    return [tuple(r) for r in conn.execute(
        "SELECT intent_type, target, lock_id, until FROM intent_acks ORDER BY 1, 2")]
