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


def query(conn: sqlite3.Connection, *, kind: str | None = None, instance_id: str | None = None,
          peer_id: str | None = None, since: float | None = None, limit: int = 50) -> list[dict]:
    """Rows matching every filter given, newest first, at most `limit`. Walking `seq`
    backwards stops after `limit` matches; the log is bounded by retention."""
    where, args = [], []
    for column, value in (("kind", kind), ("instance_id", instance_id), ("peer_id", peer_id)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if since is not None:
        where.append("at >= ?")
        args.append(since)
    sql = "SELECT * FROM transition_log"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return _rows(conn.execute(sql + " ORDER BY seq DESC LIMIT ?", (*args, limit)))


def instances_fired(conn: sqlite3.Connection, kind: str, trigger: str) -> list[str]:
    """The instance id of every logged transition of `kind` by `trigger`, once per time
    it fired (a crash check counts executions with it)."""
    return [r[0] for r in conn.execute(
        "SELECT instance_id FROM transition_log WHERE kind = ? AND trigger = ?", (kind, trigger))]


def cutoff(conn: sqlite3.Connection) -> float:
    """Rows older than this have been pruned by retention (0: none yet)."""
    row = conn.execute("SELECT cutoff FROM log_retention WHERE id = 1").fetchone()
    return row[0] if row else 0.0
