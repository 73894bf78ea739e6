"""`hive-leave` and LEAVE: a member's own signed word that it leaves, bound to its
admission. Every node marks it `left`; the leaver keeps the hive's records (its history)
and may come back with a new ticket (the `readmit` rule)."""
from __future__ import annotations

import structlog

from handlers.council import apply, records
from handlers.council.proposals import our_row, broadcast, refuse
from handlers.membership import members as ms
from handlers.wire import messages, signing
from handlers.wire.framing import MsgType, encode
from storage import council as store

log = structlog.get_logger("hive.council")


def leave(ctx) -> dict:
    me = our_row(ctx, "leave")
    meta = ms.require_hive(ctx)
    fields = {"hive_id": meta["hive_id"], "member": ctx.node_id,
              "subject": records.admission_ref(me["admission"]), "left_at": ctx.now()}
    signed = {**fields, "sig": signing.sign(ctx.lightning, meta["hive_id"], "LEAVE", fields)}
    # Sent before we stop counting ourselves a member (connected_members asks who is one).
    broadcast(ctx, encode(MsgType.LEAVE, {"leave": signed}))
    with ctx.db.transaction() as conn:
        store.add_leave(conn, signed)
    tier = apply.settle(ctx, ctx.node_id)
    return {"left": tier == "left", "tier": tier, "hive_id": meta["hive_id"]}


def take_leave(ctx, hive_id: str, signed: dict) -> str | None:
    fields = messages.unsigned(signed)
    if store.leave_of(ctx.db.conn(), fields["member"], fields["subject"]) is not None:
        return None
    problem = records.leave_problem(ctx, hive_id, signed)
    if problem:
        return problem
    with ctx.db.transaction() as conn:
        store.add_leave(conn, signed)
    apply.settle(ctx, fields["member"])
    return None


def on_leave(ctx, peer_id: str, msg: dict, auth) -> None:
    if not ctx.council_limiter.allow(peer_id):
        return refuse(peer_id, "LEAVE", "rate limited")
    signed = msg["leave"]
    problem = take_leave(ctx, auth.meta["hive_id"], signed)
    if problem:
        return refuse(peer_id, "LEAVE", problem, member=signed["member"])
    log.info("council.leave", peer_id=peer_id, member=signed["member"])
