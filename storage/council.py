"""Membership governance: proposals (promotion, ban, unban) with their signed votes, and
members' signed LEAVE records (tables `proposals`, `proposal_votes`, `member_leaves`)."""
from __future__ import annotations

import json
import sqlite3


def _proposal(row) -> dict:
    out = dict(row)
    out["record"] = json.loads(out["record"])
    return out


def add_proposal(conn: sqlite3.Connection, proposal_id: str, signed: dict) -> bool:
    """Store a signed proposal; False when it was already held."""
    return conn.execute(
        """INSERT OR IGNORE INTO proposals (proposal_id, kind, target, proposer, subject,
               created_at, expires_at, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        (proposal_id, signed["kind"], signed["target"], signed["proposer"], signed["subject"],
         signed["created_at"], signed["expires_at"], json.dumps(signed, sort_keys=True))
    ).rowcount == 1


def proposal(conn: sqlite3.Connection, proposal_id: str) -> dict | None:
    row = conn.execute("SELECT * FROM proposals WHERE proposal_id = ?",
                       (proposal_id,)).fetchone()
    return None if row is None else _proposal(row)


def proposals(conn: sqlite3.Connection) -> list[dict]:
    return [_proposal(r) for r in conn.execute(
        "SELECT * FROM proposals ORDER BY created_at, proposal_id")]


def proposals_for(conn: sqlite3.Connection, target: str, kind: str) -> list[dict]:
    return [_proposal(r) for r in conn.execute(
        "SELECT * FROM proposals WHERE target = ? AND kind = ? ORDER BY created_at",
        (target, kind))]


def decide(conn: sqlite3.Connection, proposal_id: str, now: float, votes: int,
           eligible: int) -> bool:
    """Mark a proposal decided (once); False when it already was."""
    return conn.execute("UPDATE proposals SET decided_at = ?, votes = ?, eligible = ? "
                        "WHERE proposal_id = ? AND decided_at IS NULL",
                        (now, votes, eligible, proposal_id)).rowcount == 1


def put_vote(conn: sqlite3.Connection, signed: dict) -> bool:
    """Keep the voter's newest vote on the proposal; False when the one held is as new or
    newer (an older copy never replaces it), checked by SQLite in the same statement."""
    return conn.execute(
        """INSERT INTO proposal_votes (proposal_id, voter, choice, voted_at, record)
           VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (proposal_id, voter) DO UPDATE SET choice = excluded.choice,
               voted_at = excluded.voted_at, record = excluded.record
           WHERE excluded.voted_at > proposal_votes.voted_at""",
        (signed["proposal_id"], signed["voter"], signed["choice"], signed["voted_at"],
         json.dumps(signed, sort_keys=True))).rowcount == 1


def votes(conn: sqlite3.Connection, proposal_id: str) -> list[dict]:
    return [json.loads(r[0]) for r in conn.execute(
        "SELECT record FROM proposal_votes WHERE proposal_id = ? ORDER BY voter",
        (proposal_id,))]


def vote_of(conn: sqlite3.Connection, proposal_id: str, voter: str) -> dict | None:
    row = conn.execute("SELECT record FROM proposal_votes WHERE proposal_id = ? AND voter = ?",
                       (proposal_id, voter)).fetchone()
    return None if row is None else json.loads(row[0])


def add_leave(conn: sqlite3.Connection, signed: dict) -> bool:
    return conn.execute(
        "INSERT OR IGNORE INTO member_leaves (peer_id, subject, left_at, record) "
        "VALUES (?, ?, ?, ?)",
        (signed["member"], signed["subject"], signed["left_at"],
         json.dumps(signed, sort_keys=True))).rowcount == 1


def leave_of(conn: sqlite3.Connection, peer_id: str, subject: str) -> dict | None:
    row = conn.execute("SELECT record FROM member_leaves WHERE peer_id = ? AND subject = ?",
                       (peer_id, subject)).fetchone()
    return None if row is None else json.loads(row[0])


def open_by(conn: sqlite3.Connection, proposer: str, now: float) -> int:
    """Undecided, unexpired proposals of one proposer."""
    return conn.execute("SELECT COUNT(*) FROM proposals WHERE proposer = ? AND "
                        "decided_at IS NULL AND expires_at >= ?", (proposer, now)).fetchone()[0]


def prune_lapsed(conn: sqlite3.Connection, before: float) -> int:
    """Forget proposals that expired undecided before `before`, with their votes (decided
    ones are proofs and stay)."""
    lapsed = "SELECT proposal_id FROM proposals WHERE decided_at IS NULL AND expires_at < ?"
    conn.execute(f"DELETE FROM proposal_votes WHERE proposal_id IN ({lapsed})", (before,))
    return conn.execute("DELETE FROM proposals WHERE decided_at IS NULL AND expires_at < ?",
                        (before,)).rowcount
