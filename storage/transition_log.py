"""The append-only transition log (SQLite triggers refuse UPDATE and DELETE)."""
from __future__ import annotations

import json
import sqlite3

from storage.rows import decoded


def append(conn: sqlite3.Connection, *, at: float, kind: str, instance_id: str, trigger: str,
           source: str | None, dest: str, peer_id: str | None, context: dict) -> int:
    cur = conn.execute(
        """INSERT INTO transition_log (at, kind, instance_id, trigger, source, dest, peer_id,
                                       context) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        (at, kind, instance_id, trigger, source, dest, peer_id,
         json.dumps(context, sort_keys=True, default=str)))
    return cur.lastrowid


def for_instance(conn: sqlite3.Connection, kind: str, instance_id: str) -> list[dict]:
    return _rows(conn.execute(
        "SELECT * FROM transition_log WHERE kind = ? AND instance_id = ? ORDER BY seq",
        (kind, instance_id)))


def recent(conn: sqlite3.Connection, limit: int = 50) -> list[dict]:
    rows = _rows(conn.execute("SELECT * FROM transition_log ORDER BY seq DESC LIMIT ?",
                              (limit,)))
    return rows[::-1]


def _rows(cursor) -> list[dict]:
    return decoded(cursor, "context")
