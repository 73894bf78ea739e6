"""Intent locks (seed Phase 3): announce, hold, commit, execute at most once, with no
coordinator. A conflict between two pending intents on the same type and target is won by
the lower initiator pubkey (`winner`), by the same rule on every node; an intent that
arrives when ours has already committed loses, and we tell its initiator about ours.
"""
from __future__ import annotations

import secrets

import structlog
from pyln.client import RpcException

from handlers import errors, messages, signing
from handlers import membership as ms
from handlers.authorize import connected_members, from_member
from handlers.dispatch import Send
from handlers.executors import EXECUTORS, NEEDS_AMOUNT, ExecutionFailed
from handlers.wire import MsgType, encode
from storage import hive as hive_store
from storage import intents as store
from storage import outbox

log = structlog.get_logger("hive.intents")

KIND = "intent_lock"
FUTURE_SKEW = 600
MAX_LIVE_PER_INITIATOR = 20
CLEANUP_AFTER = 3600


def winner(a: str, b: str) -> str:
    """The seed's tie-breaker: the lexicographically lowest pubkey wins."""
    return min(a, b)


def _refuse(peer_id, msg, reason, **extra):
    log.info("intent.refused", peer_id=peer_id, msg=msg, reason=reason, **extra)


def _intent_message(ctx, hive_id, intent) -> str:
    return encode(MsgType.INTENT, {"intent": intent,
                                   "sig": signing.sign(ctx.lightning, hive_id, "INTENT", intent)})


def _abort_message(ctx, hive_id, intent_id, reason) -> str:
    abort = {"intent_id": intent_id, "initiator": ctx.node_id, "aborted_at": ctx.now(),
             "reason": reason}
    return encode(MsgType.INTENT_ABORT, {
        "abort": abort, "sig": signing.sign(ctx.lightning, hive_id, "INTENT_ABORT", abort)})


def _intent_of(row) -> dict:
    return row["data"]["intent"]


# -- hive-intent: announce ----------------------------------------------------------------
def announce(ctx, intent_type, target, amount_sat) -> dict:
    if intent_type not in messages.INTENT_TYPES:
        raise errors.bad_param("type", "expected one of " + "|".join(messages.INTENT_TYPES))
    try:
        messages.node_id(target)
    except ValueError as e:
        raise errors.bad_param("target", str(e)) from None
    if intent_type in NEEDS_AMOUNT:
        if type(amount_sat) is not int or amount_sat <= 0:
            raise errors.bad_param("amount_sat", f"a positive integer is required for {intent_type}")
    elif amount_sat is not None:
        raise errors.bad_param("amount_sat", f"not used by {intent_type}")
    meta = ms.require_hive(ctx)
    me = hive_store.member(ctx.db.conn(), ctx.node_id)
    if me is None or me["tier"] not in ms.ACTIVE_TIERS:
        raise RpcException("only an active member may announce intents", errors.NOT_ADMIN)
    for row in store.live_for_target(ctx.db.conn(), intent_type, target):
        if row["initiator"] == ctx.node_id:
            raise errors.bad_param("target", f"our intent {row['intent_id']} on it is "
                                   f"already {row['state']}")
        if row["state"] != "pending" or winner(row["initiator"], ctx.node_id) != ctx.node_id:
            raise errors.bad_param("target", f"held by {row['initiator']}'s intent "
                                   f"{row['intent_id']} ({row['state']})")
    intent = {"intent_id": secrets.token_hex(16), "intent_type": intent_type, "target": target,
              "initiator": ctx.node_id, "created_at": ctx.now(), "amount_sat": amount_sat}
    msg = _intent_message(ctx, meta["hive_id"], intent)
    with ctx.db.transaction():
        ctx.dispatcher.create(KIND, intent["intent_id"],
                              domain={k: intent[k] for k in ("intent_type", "target", "initiator")},
                              data={"role": "local", "intent": intent},
                              sends=[Send(p, msg) for p in connected_members(ctx)])
        # Pending remote intents we beat are bound to lose: record it now.
        for row in store.live_for_target(ctx.db.conn(), intent_type, target):
            if row["initiator"] != ctx.node_id:
                ctx.dispatcher.fire(KIND, row["intent_id"], "conflict_lost",
                                    context={"lost_to": intent["intent_id"]})
    inst = ctx.dispatcher.load(KIND, intent["intent_id"])
    return {"intent_id": intent["intent_id"], "state": inst.state, "commits_at": inst.deadline}


# -- INTENT from a peer -------------------------------------------------------------------
def on_intent(ctx, peer_id: str, body: dict) -> None:
    ok = from_member(ctx, peer_id, body, messages.INTENT_MSG,
                     lambda why: _refuse(peer_id, "INTENT", why))
    if ok is None:
        return
    meta, _, msg = ok
    intent = msg["intent"]
    if intent["initiator"] != peer_id:
        return _refuse(peer_id, "INTENT", "initiator is not the sender")
    now = ctx.now()
    if intent["created_at"] > now + FUTURE_SKEW:
        return _refuse(peer_id, "INTENT", "created in the future")
    if intent["created_at"] < now - ctx.config().intent_expire_seconds:
        return _refuse(peer_id, "INTENT", "stale")
    if store.exists(ctx.db.conn(), intent["intent_id"]):
        return _refuse(peer_id, "INTENT", "already known (replay)")
    if store.live_count_by(ctx.db.conn(), peer_id) >= MAX_LIVE_PER_INITIATOR:
        return _refuse(peer_id, "INTENT", "too many live intents from this initiator")
    if not signing.verify(ctx.lightning, peer_id, meta["hive_id"], "INTENT", intent, msg["sig"]):
        return _refuse(peer_id, "INTENT", "not signed by its initiator")
    rivals = [r for r in store.live_for_target(ctx.db.conn(), intent["intent_type"],
                                               intent["target"])
              if r["initiator"] == ctx.node_id]
    with ctx.db.transaction():
        ctx.dispatcher.create(KIND, intent["intent_id"], peer_id=peer_id,
                              domain={k: intent[k] for k in ("intent_type", "target", "initiator")},
                              data={"role": "remote", "intent": intent})
        for ours in rivals:
            _resolve(ctx, meta["hive_id"], ours, intent, peer_id)


def _resolve(ctx, hive_id, ours, theirs, peer_id) -> None:
    """Our live intent meets theirs on the same type and target."""
    if ours["state"] == "pending" and winner(ctx.node_id, theirs["initiator"]) != ctx.node_id:
        log.info("intent.conflict_lost", ours=ours["intent_id"], theirs=theirs["intent_id"],
                 winner=theirs["initiator"])
        abort = _abort_message(ctx, hive_id, ours["intent_id"], "lost the tie-break")
        ctx.dispatcher.fire(KIND, ours["intent_id"], "conflict_lost", peer_id=peer_id,
                            context={"lost_to": theirs["intent_id"]},
                            sends=[Send(p, abort) for p in connected_members(ctx)])
        return
    # We win: the tie-break if both are pending, or because ours already committed.
    log.info("intent.conflict_won", ours=ours["intent_id"], theirs=theirs["intent_id"],
             our_state=ours["state"])
    ctx.dispatcher.fire(KIND, theirs["intent_id"], "conflict_lost", peer_id=peer_id,
                        context={"lost_to": ours["intent_id"]})
    if ours["state"] != "pending":
        # Tell its initiator about ours, so its own tie-break sees the conflict too.
        with ctx.db.transaction() as conn:
            outbox.add(conn, peer_id=peer_id, now=ctx.clock.now(),
                       msg_hex=_intent_message(ctx, hive_id, _intent_of(ours)))


def on_intent_abort(ctx, peer_id: str, body: dict) -> None:
    ok = from_member(ctx, peer_id, body, messages.INTENT_ABORT_MSG,
                     lambda why: _refuse(peer_id, "INTENT_ABORT", why))
    if ok is None:
        return
    meta, _, msg = ok
    abort = msg["abort"]
    if abort["initiator"] != peer_id:
        return _refuse(peer_id, "INTENT_ABORT", "initiator is not the sender")
    inst = ctx.dispatcher.load(KIND, abort["intent_id"])
    if inst is None:
        return _refuse(peer_id, "INTENT_ABORT", "no such intent")
    if inst.data.get("role") != "remote" or inst.data["intent"]["initiator"] != peer_id:
        return _refuse(peer_id, "INTENT_ABORT", "not the sender's intent")
    if not signing.verify(ctx.lightning, peer_id, meta["hive_id"], "INTENT_ABORT", abort,
                          msg["sig"]):
        return _refuse(peer_id, "INTENT_ABORT", "not signed by its initiator")
    ctx.dispatcher.fire(KIND, abort["intent_id"], "abort_received", peer_id=peer_id,
                        context={"reason": abort["reason"]})


# -- the tick: execute committed local intents, clean up ------------------------------------
def on_tick(ctx) -> None:
    for row in store.in_state(ctx.db.conn(), "committed"):
        if row["data"].get("role") == "local":
            execute(ctx, row["intent_id"])
    with ctx.db.transaction() as conn:
        removed = store.delete_finished(conn, ctx.clock.now() - CLEANUP_AFTER)
    if removed:
        log.info("intent.cleanup", removed=removed)


def execute(ctx, intent_id: str) -> None:
    """`executing` is committed before the executor runs: after a crash the intent is
    reconciled, never run twice."""
    if not ctx.dispatcher.fire(KIND, intent_id, "start_execution").ok:
        return
    intent = ctx.dispatcher.load(KIND, intent_id).data["intent"]
    try:
        result = EXECUTORS[intent["intent_type"]].execute(ctx, intent)
    except ExecutionFailed as e:
        ctx.dispatcher.fire(KIND, intent_id, "execution_failed",
                            data_update={"failure": str(e)}, context={"error": str(e)})
        return
    ctx.dispatcher.fire(KIND, intent_id, "execution_succeeded", data_update={"result": result},
                        context=result)


def reconcile(ctx) -> None:
    """At start: an intent found `executing` was interrupted by a crash. Ask its executor
    whether the effect exists; never run it again."""
    for row in store.in_state(ctx.db.conn(), "executing"):
        intent = _intent_of(row)
        found = EXECUTORS[intent["intent_type"]].effect_exists(ctx, intent)
        if found:
            ctx.dispatcher.fire(KIND, row["intent_id"], "execution_succeeded",
                                data_update={"result": {"reconciled": True}},
                                context={"reconciled": "effect found"})
        else:
            why = "interrupted by a restart; " + ("effect not found" if found is False else
                                                 "cannot tell whether it took effect")
            ctx.dispatcher.fire(KIND, row["intent_id"], "execution_failed",
                                data_update={"failure": why}, context={"reconciled": why})


def listing(ctx) -> dict:
    return {"intents": [
        {"intent_id": r["intent_id"], "type": r["intent_type"], "target": r["target"],
         "initiator": r["initiator"], "role": r["data"].get("role"), "state": r["state"],
         "deadline": r["deadline"], "next": r["deadline_trigger"],
         "created_at": r["created_at"], "failure": r["data"].get("failure"),
         "result": r["data"].get("result")}
        for r in store.listing(ctx.db.conn())]}
