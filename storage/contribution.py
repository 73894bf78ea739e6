"""The contribution ledger's rows: per member and day, msat forwarded into the fleet and
msat received from it; and each member's throttle state (the signal the bridge reads)."""
from __future__ import annotations

import json
import sqlite3

# A bucket saturates here instead of overflowing SQLite's 64-bit integers.
SATURATE_MSAT = 2 ** 62


def add(conn: sqlite3.Connection, buckets: dict[tuple[str, int], list[int]]) -> None:
    """Add {(peer_id, day): [forwarded_msat, received_msat]} to the day buckets."""
    conn.executemany(
        """INSERT INTO contribution_days (peer_id, day, forwarded_msat, received_msat)
           VALUES (?, ?, ?, ?)
           ON CONFLICT (peer_id, day) DO UPDATE SET
               forwarded_msat = min(forwarded_msat + excluded.forwarded_msat, ?),
               received_msat = min(received_msat + excluded.received_msat, ?)""",
        [(peer, day, min(f, SATURATE_MSAT), min(r, SATURATE_MSAT), SATURATE_MSAT, SATURATE_MSAT)
         for (peer, day), (f, r) in sorted(buckets.items())])


def totals(conn: sqlite3.Connection, since_day: int) -> dict[str, tuple[int, int]]:
    """peer_id -> (forwarded_msat, received_msat) over the days from `since_day` on."""
    rows = conn.execute(
        """SELECT peer_id, sum(forwarded_msat), sum(received_msat) FROM contribution_days
           WHERE day >= ? GROUP BY peer_id""", (since_day,))
    return {p: (int(f), int(r)) for p, f, r in rows}


def days(conn: sqlite3.Connection, since_day: int, peer_id: str | None = None) -> list[dict]:
    sql = "SELECT * FROM contribution_days WHERE day >= ?"
    args: tuple = (since_day,)
    if peer_id is not None:
        sql, args = sql + " AND peer_id = ?", (since_day, peer_id)
    return [{"peer_id": r["peer_id"], "day": r["day"], "forwarded_msat": r["forwarded_msat"],
             "received_msat": r["received_msat"]}
            for r in conn.execute(sql + " ORDER BY peer_id, day", args)]


def prune(conn: sqlite3.Connection, before_day: int) -> int:
    return conn.execute("DELETE FROM contribution_days WHERE day < ?", (before_day,)).rowcount


def throttles(conn: sqlite3.Connection) -> dict[str, dict]:
    """Each member's `contribution_throttle` row: throttled?, since when, the ratio then."""
    out = {}
    for r in conn.execute("SELECT peer_id, state, state_since, data FROM contribution_throttles"):
        out[r["peer_id"]] = {"throttled": r["state"] == "throttled", "since": r["state_since"],
                             "ratio": json.loads(r["data"]).get("ratio")}
    return out


def throttled_peers(conn: sqlite3.Connection) -> set[str]:
    """The members the bridge keeps out of the zero-fee fleet policy."""
    return {r[0] for r in conn.execute(
        "SELECT peer_id FROM contribution_throttles WHERE state = 'throttled'")}
