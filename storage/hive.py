"""The hive's identity, its invite tickets, members with their admission proofs, bans,
and the handshake-session lookups the handshake handlers need."""
from __future__ import annotations

import json
import sqlite3

from storage import changes


def _cached(conn: sqlite3.Connection, what, compute):
    """Cached until the hive's identity, its members or its bans change."""
    return changes.cached(conn, "membership", what, compute)


def get_meta(conn: sqlite3.Connection) -> dict | None:
    meta = _cached(conn, "meta", lambda: _get_meta(conn))
    return None if meta is None else {**meta, "genesis": dict(meta["genesis"])}


def sender_view(conn: sqlite3.Connection, tiers: tuple[str, ...]
                ) -> tuple[dict | None, frozenset[str], frozenset[str]]:
    """What authorizing a member message reads, in one look-up: the hive (not to be
    changed), the banned ids (ban list or tier) and the ids of members in `tiers` not
    banned. Cached until the membership changes."""
    def compute():
        return (_get_meta(conn), _banned(conn), frozenset(r[0] for r in conn.execute(
            f"SELECT peer_id FROM hive_members WHERE state IN ({', '.join('?' for _ in tiers)}) "
            f"AND peer_id NOT IN (SELECT peer_id FROM hive_bans)", tiers)))
    return _cached(conn, ("sender_view", tiers), compute)


def _get_meta(conn: sqlite3.Connection) -> dict | None:
    row = conn.execute("SELECT hive_id, name, admin_id, genesis, joined_at FROM hive_meta "
                       "WHERE id = 1").fetchone()
    if row is None:
        return None
    out = dict(row)
    out["genesis"] = json.loads(out["genesis"])
    return out


def set_meta(conn: sqlite3.Connection, *, hive_id: str, name: str, admin_id: str,
             genesis: dict, joined_at: float) -> None:
    """Record the hive we belong to; fails (IntegrityError) if we already belong to one."""
    conn.execute("INSERT INTO hive_meta (id, hive_id, name, admin_id, genesis, joined_at) "
                 "VALUES (1, ?, ?, ?, ?, ?)",
                 (hive_id, name, admin_id, json.dumps(genesis, sort_keys=True), joined_at))


def add_ticket(conn: sqlite3.Connection, *, ticket_id: str, tier: str, peer_id: str | None,
               issued_at: float, expires_at: float) -> None:
    conn.execute("INSERT INTO tickets (ticket_id, tier, peer_id, issued_at, expires_at) "
                 "VALUES (?, ?, ?, ?, ?)", (ticket_id, tier, peer_id, issued_at, expires_at))


def get_ticket(conn: sqlite3.Connection, ticket_id: str) -> dict | None:
    row = conn.execute("SELECT * FROM tickets WHERE ticket_id = ?", (ticket_id,)).fetchone()
    return None if row is None else dict(row)


def use_ticket(conn: sqlite3.Connection, ticket_id: str, peer_id: str, now: float) -> bool:
    """Mark a ticket used; False if it was already used (tickets are single-use)."""
    return conn.execute("UPDATE tickets SET used_by = ?, used_at = ? "
                        "WHERE ticket_id = ? AND used_by IS NULL",
                        (peer_id, now, ticket_id)).rowcount == 1


def members(conn: sqlite3.Connection) -> list[dict]:
    return [_member(r) for r in conn.execute(
        "SELECT peer_id, state, admission FROM hive_members ORDER BY peer_id")]


def member_ids(conn: sqlite3.Connection, tiers: tuple[str, ...]) -> set[str]:
    """The ids of members in `tiers` and not in the ban list, without reading their
    admission records (asked for every member message)."""
    return set(member_id_set(conn, tiers))


def member_id_set(conn: sqlite3.Connection, tiers: tuple[str, ...]) -> frozenset[str]:
    """`member_ids`, not to be changed: cached until the membership changes."""
    def compute():
        marks = ", ".join("?" for _ in tiers)
        return frozenset(r[0] for r in conn.execute(
            f"SELECT peer_id FROM hive_members WHERE state IN ({marks}) "
            f"AND peer_id NOT IN (SELECT peer_id FROM hive_bans)", tiers))
    return _cached(conn, ("ids", tiers), compute)


def member(conn: sqlite3.Connection, peer_id: str) -> dict | None:
    row = conn.execute("SELECT peer_id, state, admission FROM hive_members WHERE peer_id = ?",
                       (peer_id,)).fetchone()
    return None if row is None else _member(row)


def _member(row) -> dict:
    return {"peer_id": row["peer_id"], "tier": row["state"],
            "admission": json.loads(row["admission"])}


def is_banned(conn: sqlite3.Connection, peer_id: str) -> bool:
    return peer_id in _cached(conn, "banned", lambda: _banned(conn))


def _banned(conn: sqlite3.Connection) -> frozenset[str]:
    return frozenset(r[0] for r in conn.execute(
        "SELECT peer_id FROM hive_bans UNION SELECT peer_id FROM hive_members "
        "WHERE state = 'banned'"))


def banned_ids(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT peer_id FROM hive_bans")}


def add_ban(conn: sqlite3.Connection, *, peer_id: str, reason: str, now: float) -> None:
    conn.execute("INSERT OR REPLACE INTO hive_bans (peer_id, reason, banned_at) VALUES (?, ?, ?)",
                 (peer_id, reason, now))


def remove_ban(conn: sqlite3.Connection, peer_id: str) -> None:
    conn.execute("DELETE FROM hive_bans WHERE peer_id = ?", (peer_id,))


def set_admission(conn: sqlite3.Connection, peer_id: str, admission: dict) -> None:
    """A returning member's new admission record replaces the one its last stay had."""
    conn.execute("UPDATE hive_members SET admission = ? WHERE peer_id = ?",
                 (json.dumps(admission, sort_keys=True), peer_id))


def open_sessions(conn: sqlite3.Connection, kind: str, states: tuple[str, ...]) -> int:
    marks = ", ".join("?" for _ in states)
    return conn.execute(f"SELECT COUNT(*) FROM handshake_sessions WHERE kind = ? "
                        f"AND state IN ({marks})", (kind, *states)).fetchone()[0]


def session_for_peer(conn: sqlite3.Connection, kind: str, peer_id: str,
                     states: tuple[str, ...]) -> str | None:
    return _newest_session(conn, kind, "peer_id", peer_id, states)


def session_for_ticket(conn: sqlite3.Connection, kind: str, ticket_id: str,
                       states: tuple[str, ...]) -> str | None:
    return _newest_session(conn, kind, "ticket_id", ticket_id, states)


def _newest_session(conn, kind, column, value, states) -> str | None:
    if column not in ("peer_id", "ticket_id"):    # a column name, never a peer's input
        raise ValueError(f"no session lookup by {column!r}")
    marks = ", ".join("?" for _ in states)
    row = conn.execute(f"SELECT session_id FROM handshake_sessions WHERE kind = ? "
                       f"AND {column} = ? AND state IN ({marks}) ORDER BY created_at DESC",
                       (kind, value, *states)).fetchone()
    return None if row is None else row["session_id"]


def attested_with_ticket(conn: sqlite3.Connection, kind: str, ticket_id: str) -> bool:
    """Did a session of ours with this ticket get as far as sending ATTEST?"""
    return conn.execute("SELECT 1 FROM handshake_sessions WHERE kind = ? AND ticket_id = ? "
                        "AND json_extract(data, '$.attested') = 1 LIMIT 1",
                        (kind, ticket_id)).fetchone() is not None
