"""The HiveMap: each member's latest signed state (table `hive_state`)."""
from __future__ import annotations

import json
import sqlite3

from storage import changes


def get(conn: sqlite3.Connection, peer_id: str) -> dict | None:
    row = conn.execute("SELECT state_json, signature FROM hive_state WHERE peer_id = ?",
                       (peer_id,)).fetchone()
    return None if row is None else {"state": json.loads(row[0]), "sig": row[1]}


def held(conn: sqlite3.Connection, peer_id: str) -> tuple[int, int, str] | None:
    """(version, timestamp, signature) of the member's state we hold: what a newer one
    is compared with, without reading the state itself."""
    row = conn.execute("SELECT version, timestamp, signature FROM hive_state WHERE peer_id = ?",
                       (peer_id,)).fetchone()
    return None if row is None else (row[0], row[1], row[2])


def digest_rows(conn: sqlite3.Connection) -> list[tuple[str, int, int]]:
    """`(peer_id, timestamp, version)` of every state held, by peer_id: what the fleet hash
    and the DIGEST cover, read without the states themselves, as tuples (cached until a
    state changes: not to be changed). Timestamps are integers on the wire; the column's
    REAL affinity stores them as floats, so they are read back as integers."""
    def compute():
        cur = conn.cursor()
        cur.row_factory = None          # plain tuples: 1,000 sqlite3.Row objects cost more
        return cur.execute("SELECT peer_id, CAST(timestamp AS INTEGER), version "
                           "FROM hive_state ORDER BY peer_id").fetchall()
    return changes.cached(conn, "hivemap", "digest_rows", compute)


def settled_rows(conn: sqlite3.Connection, before: int) -> list[tuple[str, int, int]]:
    """`(peer_id, timestamp, version)` per member of the newest state made by `before`: the
    state held if it was, else the one it replaced if that was (else none), by peer_id.
    What a STATE_HASH covers (docs/PROTOCOL.md §5)."""
    def compute():
        cur = conn.cursor()
        cur.row_factory = None
        return cur.execute("SELECT peer_id, CAST(timestamp AS INTEGER), version, "
                           "CAST(prev_timestamp AS INTEGER), prev_version "
                           "FROM hive_state ORDER BY peer_id").fetchall()
    out = []
    for pid, ts, v, prev_ts, prev_v in changes.cached(conn, "hivemap", "history_rows", compute):
        if ts <= before:
            out.append((pid, ts, v))
        elif prev_ts is not None and prev_ts <= before:
            out.append((pid, prev_ts, prev_v))
    return out


def versions(conn: sqlite3.Connection, peer_ids) -> dict[str, int]:
    """The version held of each of `peer_ids` held (one indexed look-up each)."""
    ids = list(peer_ids)
    marks = ", ".join("?" for _ in ids) or "''"
    return {r[0]: r[1] for r in conn.execute(
        f"SELECT peer_id, version FROM hive_state WHERE peer_id IN ({marks})", ids)}


def all_entries(conn: sqlite3.Connection) -> list[dict]:
    return [{"state": json.loads(r[0]), "sig": r[1]} for r in conn.execute(
        "SELECT state_json, signature FROM hive_state ORDER BY peer_id")]


def put_if_newer(conn: sqlite3.Connection, state: dict, sig: str, now: float,
                 state_json: str | None = None) -> bool:
    """Store a member's state unless we hold the same or a newer one, in the total order
    (version, timestamp, signature), checked by SQLite in the same statement: versions
    never go back, and two different states of one version settle the same everywhere.
    `state_json`: the state as JSON, when the caller has it already."""
    cur = conn.execute(
        """INSERT INTO hive_state (peer_id, version, timestamp, state_json, signature, updated_at)
           VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (peer_id) DO UPDATE SET prev_version = hive_state.version,
               prev_timestamp = hive_state.timestamp, version = excluded.version,
               timestamp = excluded.timestamp, state_json = excluded.state_json,
               signature = excluded.signature, updated_at = excluded.updated_at
           WHERE (excluded.version, excluded.timestamp, excluded.signature)
                 > (hive_state.version, hive_state.timestamp, hive_state.signature)""",
        (state["peer_id"], state["version"], state["timestamp"],
         state_json or json.dumps(state, sort_keys=True), sig, now))
    return cur.rowcount == 1


def forget_except(conn: sqlite3.Connection, peer_ids: set[str]) -> int:
    """Drop the states of nodes that are no longer members."""
    marks = ", ".join("?" for _ in peer_ids) or "''"
    return conn.execute(f"DELETE FROM hive_state WHERE peer_id NOT IN ({marks})",
                        tuple(peer_ids)).rowcount
