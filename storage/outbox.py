"""Messages to peers, written in the same transaction as the state change that causes
them and sent only after it commits."""
from __future__ import annotations

import sqlite3


def add(conn: sqlite3.Connection, *, peer_id: str, msg_hex: str, now: float,
        not_before: float | None = None) -> int:
    """Queue a message, due now or (paced) at `not_before`."""
    cur = conn.execute(
        "INSERT INTO outbox (created_at, peer_id, msg_hex, next_attempt_at) VALUES (?, ?, ?, ?)",
        (now, peer_id, msg_hex, now if not_before is None else max(now, not_before)))
    return cur.lastrowid


def due(conn: sqlite3.Connection, now: float, limit: int = 100) -> list[dict]:
    return [dict(r) for r in conn.execute(
        """SELECT seq, peer_id, msg_hex, attempts FROM outbox
           WHERE sent_at IS NULL AND abandoned_at IS NULL AND next_attempt_at <= ? ORDER BY seq LIMIT ?""",
        (now, limit))]


def mark_sent(conn: sqlite3.Connection, seq: int, now: float) -> None:
    conn.execute("UPDATE outbox SET sent_at = ?, attempts = attempts + 1 WHERE seq = ?",
                 (now, seq))


def mark_failed(conn: sqlite3.Connection, seq: int, error: str, now: float,
                retry_at: float | None) -> None:
    """Record a failed send; `retry_at=None` gives up on the message for good."""
    if retry_at is None:
        conn.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ?, abandoned_at = ? "
                     "WHERE seq = ?", (error, now, seq))
    else:
        conn.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ?, "
                     "next_attempt_at = ? WHERE seq = ?", (error, retry_at, seq))


def prune_sent(conn: sqlite3.Connection, before: float) -> int:
    """Drop delivered or abandoned messages created before `before`."""
    return conn.execute("DELETE FROM outbox WHERE (sent_at IS NOT NULL OR abandoned_at IS NOT NULL) "
                        "AND created_at < ?",
                        (before,)).rowcount


def total_count(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]


def pending_count(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL "
                        "AND abandoned_at IS NULL").fetchone()[0]


def oldest_pending_at(conn: sqlite3.Connection) -> float | None:
    """When the oldest message still waiting to be sent was queued (None: nothing waits)."""
    return conn.execute("SELECT MIN(created_at) FROM outbox WHERE sent_at IS NULL "
                        "AND abandoned_at IS NULL").fetchone()[0]
