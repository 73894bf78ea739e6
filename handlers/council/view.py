"""What the operator sees of membership governance: each member's value-add score in
`hive-members`, and `hive-proposals` (on the reader thread: reads only)."""
from __future__ import annotations

from handlers.contribution.flow import first_day, ratio
from handlers.council import records
from handlers.council.score import unique_peers, value_add
from handlers.frame.clock import unix
from handlers.membership import members as ms
from storage import contribution as contribution_store
from storage import council as store
from storage import hive as hive_store
from machines.guards import majority_quorum
from storage import hivemap


def scores(ctx) -> dict[str, dict]:
    """Every member's value-add score, from the HiveMap and the contribution ledger."""
    conn, cfg = ctx.db.conn(), ctx.config()
    states = {e["state"]["peer_id"]: e["state"] for e in hivemap.all_entries(conn)}
    unique = unique_peers(list(states.values()))
    totals = contribution_store.totals(conn, first_day(ctx))
    now = ctx.now()
    out = {}
    for m in hive_store.members(conn):
        peer = m["peer_id"]
        state = states.get(peer)
        fwd, rcv = totals.get(peer, (0, 0))
        out[peer] = value_add(
            age_seconds=None if state is None else now - state["timestamp"],
            heartbeat_seconds=cfg.heartbeat_interval, ratio=ratio(fwd, rcv, cfg),
            unique_peers=unique.get(peer, 0))
    return out


def annotate(ctx, view: dict) -> dict:
    """Add `value_add` to each member of a members view."""
    if not view.get("members"):
        return view
    table = scores(ctx)
    for m in view["members"]:
        m["value_add"] = table.get(m["peer_id"])
    return view


def status_of(conn, row: dict, now: int) -> str:
    """decided | open | expired | moot (its target is no longer where it applies)."""
    if row["decided_at"] is not None:
        return "decided"
    if now > row["expires_at"]:
        return "expired"
    return "open" if applies(conn, row) else "moot"


def applies(conn, row: dict) -> bool:
    """Could this proposal still change its target's tier?"""
    target = hive_store.member(conn, row["target"])
    if target is None:
        return False
    if row["kind"] == "unban":
        return target["tier"] == "banned"
    if row["subject"] != records.admission_ref(target["admission"]):
        return False
    return target["tier"] == "neophyte" if row["kind"] == "promote" else \
        target["tier"] not in ("banned", "admin")


def listing(ctx) -> dict:
    conn = ctx.db.conn()
    if hive_store.get_meta(conn) is None:     # the same keys as in a hive
        return {"proposals": [], "our_id": ctx.known_node_id, "voting_members": [],
                "active_members": 0}
    now = ctx.now()
    out = []
    for row in store.proposals(conn):
        votes = store.votes(conn, row["proposal_id"])
        needed, eligible = records.quorum(conn, row["target"])
        if row["decided_at"] is not None:      # the counts it was decided on
            needed, eligible = majority_quorum(row["eligible"]), row["eligible"]
        out.append({"proposal_id": row["proposal_id"], "kind": row["kind"],
                    "target": row["target"], "proposer": row["proposer"],
                    "reason": row["record"]["reason"], "created_at": unix(row["created_at"]),
                    "expires_at": unix(row["expires_at"]), "status": status_of(conn, row, now),
                    "yes": sorted(v["voter"] for v in votes if v["choice"] == "yes"),
                    "no": sorted(v["voter"] for v in votes if v["choice"] == "no"),
                    "quorum": needed, "eligible": eligible})
    return {"proposals": out, "our_id": ctx.node_id,
            "voting_members": sorted(records.voters(conn, "")),
            "active_members": len(ms.active_members(conn))}
