"""Majority acknowledgements for money-moving intents (channel_open, rebalance).

Such an intent commits only once a majority (`guards.majority_quorum`) of the members its
initiator counted at its announce (`voters`, the initiator included) acknowledged it, each
with a signed INTENT_ACK. A member acknowledges at most one intent per type and target
while that intent can still commit: the promise is a row in `intent_acks`, committed in
the same transaction that queues the INTENT_ACK, and it binds until the intent's lock
window (plus the clock skew we accept) ends, or until its initiator aborts it. Two rival
intents would each need a majority of the same members, and a member in both majorities
would have promised twice: so at most one of them commits (docs/PROTOCOL.md §6).

Which uncommitted intent a free member acknowledges is the seed's tie-breaker (the lowest
initiator key), so the intent that wins the tie-break also gathers the acknowledgements.
"""
from __future__ import annotations

import structlog

from handlers.frame.refusals import refusal_log
from handlers.membership import members as ms
from handlers.wire import messages, signing
from handlers.wire.framing import MsgType, encode
from machines import guards
from machines.intent_lock import SPEC
from storage import intents as store
from storage import outbox

log = structlog.get_logger("hive.intents")

KIND = SPEC.kind
UNCOMMITTED = SPEC.groups["uncommitted"]
# How far a peer's clock may run ahead of ours. An acknowledgement binds this long past
# its intent's lock window, so a member whose clock runs ahead never frees its word while
# the initiator (judging the window by its own clock) may still commit.
FUTURE_SKEW = 600


def needs_majority(intent_type: str) -> bool:
    return intent_type in messages.MAJORITY_INTENT_TYPES


def binds_until(intent: dict) -> float:
    return intent["created_at"] + intent["expire_seconds"] + FUTURE_SKEW


def promised(ctx, intent_type: str, target: str) -> str | None:
    """The lock id of the intent our word is given to on this target, if it still binds."""
    return store.acked(ctx.db.conn(), intent_type, target, ctx.clock.now())


def own(ctx, conn, intent: dict, lock_id: str, sig: str) -> dict:
    """At our announce, in its transaction: we acknowledge our own intent (its signature
    is our word) and fix who votes on it. Returns what the lock's data carries."""
    store.ack(conn, intent["intent_type"], intent["target"], lock_id, ctx.clock.now(),
              binds_until(intent))
    voters = sorted(m["peer_id"] for m in ms.active_members(conn))
    return {"voters": voters, "acks": {ctx.node_id: sig},
            "quorum": guards.majority_quorum(len(voters))}


def release(conn, lock_id: str) -> None:
    """The intent can never commit (its initiator aborted it): our word is free again."""
    store.release_ack(conn, lock_id)


def ack_next(ctx, hive_id: str, intent_type: str, target: str) -> None:
    """If our word on this target is free, give it to the uncommitted peer intent that
    wins the tie-break, and tell its initiator."""
    if not needs_majority(intent_type) or promised(ctx, intent_type, target) is not None:
        return
    now = ctx.clock.now()
    rows = [r for r in store.holding(ctx.db.conn(), intent_type, target, now, UNCOMMITTED)
            if r["state"] in UNCOMMITTED and r["data"].get("role") == "remote"
            and r["data"].get("expires_at", 0) > now]
    if not rows:
        return
    best = min(rows, key=lambda r: r["initiator"])
    intent = best["data"]["intent"]
    ack = {"intent_id": intent["intent_id"], "initiator": intent["initiator"],
           "intent_type": intent_type, "target": target, "member": ctx.node_id,
           "acked_at": ctx.now()}
    msg = encode(MsgType.INTENT_ACK, {
        "ack": ack, "sig": signing.sign(ctx.lightning, hive_id, "INTENT_ACK", ack)})
    with ctx.db.transaction() as conn:
        store.ack(conn, intent_type, target, best["lock_id"], now, binds_until(intent))
        outbox.add(conn, peer_id=intent["initiator"], msg_hex=msg, now=now)
    log.info("intent.acknowledged", lock_id=best["lock_id"], target=target)


def _refuse(peer_id, reason, **extra):
    refusal_log(log, "intent.refused", peer_id, msg="INTENT_ACK", reason=reason, **extra)


def on_intent_ack(ctx, peer_id: str, msg: dict, auth) -> None:
    """A member's acknowledgement of our intent: counted once, and the intent commits as
    soon as a majority of its voters acknowledged it (after its hold, within its window)."""
    ack = msg["ack"]
    if ack["member"] != peer_id:
        return _refuse(peer_id, "member is not the sender")
    if ack["initiator"] != ctx.node_id:
        return _refuse(peer_id, "not our intent")
    lock_id = messages.intent_lock_id(ctx.node_id, ack["intent_id"])
    inst = ctx.dispatcher.load(KIND, lock_id)
    if inst is None or inst.data.get("role") != "local":
        return _refuse(peer_id, "no such intent")
    intent = inst.data["intent"]
    if (intent["intent_type"], intent["target"]) != (ack["intent_type"], ack["target"]):
        return _refuse(peer_id, "does not match the intent")
    if peer_id not in inst.data.get("voters", ()):
        return _refuse(peer_id, "not a voter on this intent")
    acks = inst.data.get("acks") or {}
    if peer_id in acks:
        return _refuse(peer_id, "already acknowledged (replay)")
    if not ctx.dispatcher.allows(KIND, lock_id, "ack_received"):
        return _refuse(peer_id, f"intent is {inst.state}, no longer counting")
    if not signing.verify(ctx.lightning, peer_id, auth.meta["hive_id"], "INTENT_ACK", ack,
                          msg["sig"]):
        return _refuse(peer_id, "not signed by its member")
    with ctx.db.transaction():
        ctx.dispatcher.fire(KIND, lock_id, "ack_received", peer_id=peer_id,
                            data_update={"acks": {**acks, peer_id: msg["sig"]}},
                            context={"votes": len(acks) + 1})
        if ctx.dispatcher.allows(KIND, lock_id, "tally"):
            ctx.dispatcher.fire(KIND, lock_id, "tally", peer_id=peer_id,
                                context={"votes": len(acks) + 1})
