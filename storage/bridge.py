"""The bridge's own rows: each member's fleet fee policy (wanted, settled, the fees it
replaced) and the CLBoss tags cl-hive added (so a release removes only those)."""
from __future__ import annotations

import json
import sqlite3


def fee_policy(conn: sqlite3.Connection, peer_id: str) -> dict | None:
    row = conn.execute("SELECT * FROM bridge_fee_policies WHERE peer_id = ?",
                       (peer_id,)).fetchone()
    return None if row is None else _policy(row)


def fee_policies(conn: sqlite3.Connection, *, settled: bool | None = None) -> list[dict]:
    if settled is None:
        rows = conn.execute("SELECT * FROM bridge_fee_policies ORDER BY peer_id")
    else:
        rows = conn.execute("SELECT * FROM bridge_fee_policies WHERE settled = ? "
                            "ORDER BY peer_id", (int(settled),))
    return [_policy(r) for r in rows]


def want(conn: sqlite3.Connection, peer_id: str, wanted: str, now: float) -> bool:
    """Ask for `wanted` (fleet|released); True when that is a change (it needs settling)."""
    cur = conn.execute(
        """INSERT INTO bridge_fee_policies (peer_id, wanted, settled, updated_at)
           VALUES (?, ?, 0, ?)
           ON CONFLICT (peer_id) DO UPDATE SET wanted = excluded.wanted, settled = 0,
               updated_at = excluded.updated_at
           WHERE bridge_fee_policies.wanted != excluded.wanted""", (peer_id, wanted, now))
    return cur.rowcount == 1


def unsettle(conn: sqlite3.Connection, now: float) -> None:
    """After a restart every policy is checked again (the companion may have lost it)."""
    conn.execute("UPDATE bridge_fee_policies SET settled = 0, updated_at = ?", (now,))


def settle(conn: sqlite3.Connection, peer_id: str, wanted: str, via: str, now: float) -> None:
    """Mark settled, only if `wanted` is still what we want (it may have changed meanwhile)."""
    conn.execute("UPDATE bridge_fee_policies SET settled = 1, applied_via = ?, last_error = NULL, "
                 "updated_at = ? WHERE peer_id = ? AND wanted = ?", (via, now, peer_id, wanted))


def failed(conn: sqlite3.Connection, peer_id: str, error: str, now: float) -> None:
    conn.execute("UPDATE bridge_fee_policies SET last_error = ?, updated_at = ? "
                 "WHERE peer_id = ?", (error[:500], now, peer_id))


def remember_replaced(conn: sqlite3.Connection, peer_id: str, fees: dict) -> None:
    """Keep the first fees we saw per channel: they are what a release restores."""
    row = fee_policy(conn, peer_id)
    if row is None:
        return
    merged = {**fees, **row["replaced"]}
    conn.execute("UPDATE bridge_fee_policies SET replaced = ? WHERE peer_id = ?",
                 (json.dumps(merged, sort_keys=True), peer_id))


def forget_replaced(conn: sqlite3.Connection, peer_id: str) -> None:
    conn.execute("UPDATE bridge_fee_policies SET replaced = '{}' WHERE peer_id = ?", (peer_id,))


def _policy(row) -> dict:
    out = dict(row)
    out["replaced"] = json.loads(out["replaced"])
    out["settled"] = bool(out["settled"])
    return out


def our_tags(conn: sqlite3.Connection, peer_id: str) -> set[str]:
    return {r["tag"] for r in conn.execute(
        "SELECT tag FROM bridge_clboss_tags WHERE peer_id = ?", (peer_id,))}


def add_our_tag(conn: sqlite3.Connection, peer_id: str, tag: str, now: float) -> None:
    conn.execute("INSERT OR IGNORE INTO bridge_clboss_tags (peer_id, tag, added_at) "
                 "VALUES (?, ?, ?)", (peer_id, tag, now))


def drop_our_tag(conn: sqlite3.Connection, peer_id: str, tag: str) -> None:
    conn.execute("DELETE FROM bridge_clboss_tags WHERE peer_id = ? AND tag = ?", (peer_id, tag))
