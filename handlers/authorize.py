"""Who may send what: the checks every message between members starts with, written once."""
from __future__ import annotations

from handlers import membership as ms
from handlers import messages
from handlers.wire import WireError
from storage import hive as hive_store


def connected_members(ctx, members: set[str] | None = None) -> list[str]:
    """Active members other than us that lightningd reports connected."""
    if members is None:
        members = {m["peer_id"] for m in ms.active_members(ctx.db.conn())}
    peers = ctx.lightning.call("listpeers", {}).get("peers", [])
    return sorted(p["id"] for p in peers
                  if p.get("connected") and p["id"] in members and p["id"] != ctx.node_id)


def from_member(ctx, peer_id: str, body: dict, schema: dict, refuse):
    """In a hive; the sender is not banned and is an active member; the body parses.
    Returns (hive meta, active member ids, parsed body), or None once `refuse(reason)`
    has been told why."""
    conn = ctx.db.conn()
    meta = hive_store.get_meta(conn)
    if meta is None:
        return refuse("this node is not in a hive")
    if hive_store.is_banned(conn, peer_id):
        return refuse("sender is banned")
    members = {m["peer_id"] for m in ms.active_members(conn)}
    if peer_id not in members:
        return refuse("sender is not a member")
    try:
        parsed = messages.parse(schema, body)
    except WireError as e:
        return refuse(f"malformed: {e}")
    return meta, members, parsed
