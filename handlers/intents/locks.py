"""Intent locks (seed Phase 3): announce, hold, commit, execute at most once, with no
coordinator. One rule, applied the same way on every node:

- between two pending intents on the same type and target, the lower initiator pubkey
  wins (`winner`);
- a committed intent (or one executed within `hive-intent-expire-seconds`) beats a
  pending one whatever the keys. A member announces its commit (INTENT with
  `committed: true`) and answers a late rival with it, so the rival yields.

Both sides commit only if neither heard of the other within the hold (a partition, or
delivery slower than the hold).
"""
from __future__ import annotations

import secrets

import structlog
from pyln.client import RpcException

from handlers.frame import errors
from handlers.wire import messages, signing
from handlers.membership import members as ms
from handlers.frame.dispatch import Send
from handlers.intents.executors import EXECUTORS, NEEDS_AMOUNT, ExecutionFailed
from handlers.bridge.pending import Pending
from handlers.wire.framing import MsgType, encode
from storage import hive as hive_store
from storage import intents as store
from storage import outbox

log = structlog.get_logger("hive.intents")

KIND = "intent_lock"
FUTURE_SKEW = 600
# A peer's intents we keep: live ones (its flood bound), and recent finished ones.
MAX_LIVE_PER_INITIATOR = 20
MAX_FINISHED_PER_INITIATOR = 100
CLEANUP_AFTER = 3600


def winner(a: str, b: str) -> str:
    """The seed's tie-breaker: the lexicographically lowest pubkey wins."""
    return min(a, b)


def _refuse(peer_id, msg, reason, **extra):
    log.info("intent.refused", peer_id=peer_id, msg=msg, reason=reason, **extra)


def _holding(ctx, intent_type, target) -> list[dict]:
    since = ctx.clock.now() - ctx.config().intent_expire_seconds
    return store.holding(ctx.db.conn(), intent_type, target, since)


def _intent_message(intent, sig, committed=False) -> str:
    return encode(MsgType.INTENT, {"intent": intent, "sig": sig, "committed": committed})


def _abort_message(ctx, hive_id, intent_id, reason) -> str:
    abort = {"intent_id": intent_id, "initiator": ctx.node_id, "aborted_at": ctx.now(),
             "reason": reason}
    return encode(MsgType.INTENT_ABORT, {
        "abort": abort, "sig": signing.sign(ctx.lightning, hive_id, "INTENT_ABORT", abort)})


def _amount_fits(intent_type, amount) -> bool:
    return (amount is not None) == (intent_type in NEEDS_AMOUNT)


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
    # Peers keep our intents live for up to intent_expire_seconds after they hear of them
    # and refuse more than MAX_LIVE_PER_INITIATOR: never send one they would drop.
    window = ctx.config().intent_expire_seconds + FUTURE_SKEW
    recent = store.created_since_by(ctx.db.conn(), ctx.node_id, ctx.clock.now() - window)
    if recent >= MAX_LIVE_PER_INITIATOR:
        raise RpcException(f"this node announced {recent} intents in the last {window} s; "
                           f"peers accept at most {MAX_LIVE_PER_INITIATOR} at a time",
                           errors.TOO_MANY_INTENTS)
    # A target anyone already holds is not contested: preempting a pending rival late in
    # its hold is how two members would both end up executing.
    for row in _holding(ctx, intent_type, target):
        who = "our" if row["initiator"] == ctx.node_id else f"{row['initiator']}'s"
        raise errors.bad_param("target", f"held by {who} intent {row['intent_id']} "
                               f"({row['state']})")
    intent = {"intent_id": secrets.token_hex(16), "intent_type": intent_type, "target": target,
              "initiator": ctx.node_id, "created_at": ctx.now(), "amount_sat": amount_sat}
    sig = signing.sign(ctx.lightning, meta["hive_id"], "INTENT", intent)
    msg = _intent_message(intent, sig)
    ctx.dispatcher.create(KIND, intent["intent_id"],
                          domain={k: intent[k] for k in ("intent_type", "target", "initiator")},
                          data={"role": "local", "intent": intent, "sig": sig},
                          sends=[Send(p, msg) for p in ms.connected_members(ctx)])
    inst = ctx.dispatcher.load(KIND, intent["intent_id"])
    return {"intent_id": intent["intent_id"], "state": inst.state, "commits_at": inst.deadline}


# -- INTENT from a peer -------------------------------------------------------------------
def on_intent(ctx, peer_id: str, msg: dict, auth) -> None:
    meta = auth.meta
    intent, committed = msg["intent"], msg["committed"]
    if intent["initiator"] != peer_id:
        return _refuse(peer_id, "INTENT", "initiator is not the sender")
    if not _amount_fits(intent["intent_type"], intent["amount_sat"]):
        return _refuse(peer_id, "INTENT", "amount_sat does not fit the intent type")
    now = ctx.now()
    if intent["created_at"] > now + FUTURE_SKEW:
        return _refuse(peer_id, "INTENT", "created in the future")
    if intent["created_at"] < now - ctx.config().intent_expire_seconds:
        return _refuse(peer_id, "INTENT", "stale")
    known = ctx.dispatcher.load(KIND, intent["intent_id"])
    if known is not None:
        if committed and known.data.get("role") == "remote" and \
                known.data["intent"] == intent:
            # The commit notice of an intent we know: a pending rival of ours yields.
            return _yield_to(ctx, meta["hive_id"], intent, peer_id)
        return _refuse(peer_id, "INTENT", "already known (replay)")
    if store.live_count_by(ctx.db.conn(), peer_id) >= MAX_LIVE_PER_INITIATOR:
        return _refuse(peer_id, "INTENT", "too many live intents from this initiator")
    if not signing.verify(ctx.lightning, peer_id, meta["hive_id"], "INTENT", intent, msg["sig"]):
        return _refuse(peer_id, "INTENT", "not signed by its initiator")
    ours = [r for r in _holding(ctx, intent["intent_type"], intent["target"])
            if r["initiator"] == ctx.node_id]
    with ctx.db.transaction() as conn:
        # Rivals that lose at once stop being live: keep memory bounded all the same.
        store.trim_finished(conn, peer_id, MAX_FINISHED_PER_INITIATOR)
        ctx.dispatcher.create(KIND, intent["intent_id"], peer_id=peer_id,
                              domain={k: intent[k] for k in ("intent_type", "target", "initiator")},
                              data={"role": "remote", "intent": intent, "sig": msg["sig"]})
        for row in ours:
            _resolve(ctx, meta["hive_id"], row, intent, committed, peer_id)


def _resolve(ctx, hive_id, ours, theirs, theirs_committed, peer_id) -> None:
    """Our intent that holds the target meets theirs."""
    if ours["state"] == "pending" and (
            theirs_committed or winner(ctx.node_id, theirs["initiator"]) != ctx.node_id):
        _abort_ours(ctx, hive_id, ours, theirs["intent_id"], peer_id)
        return
    if ours["state"] != "pending" and theirs_committed:
        # Both committed: neither heard of the other within the hold. Nothing can undo
        # it now; say so loudly for the operator.
        log.warning("intent.both_committed", ours=ours["intent_id"],
                    theirs=theirs["intent_id"], target=theirs["target"])
        return
    log.info("intent.conflict_won", ours=ours["intent_id"], theirs=theirs["intent_id"],
             our_state=ours["state"])
    notice = []
    if ours["state"] != "pending":
        # A late rival: answer with our commit, so its initiator yields too.
        notice = [Send(peer_id, _intent_message(ours["data"]["intent"], ours["data"]["sig"],
                                                committed=True))]
    ctx.dispatcher.fire(KIND, theirs["intent_id"], "conflict_lost", peer_id=peer_id,
                        context={"lost_to": ours["intent_id"]}, sends=notice)


def _abort_ours(ctx, hive_id, ours, lost_to, peer_id) -> None:
    log.info("intent.conflict_lost", ours=ours["intent_id"], theirs=lost_to)
    abort = _abort_message(ctx, hive_id, ours["intent_id"], "lost the tie-break")
    ctx.dispatcher.fire(KIND, ours["intent_id"], "conflict_lost", peer_id=peer_id,
                        context={"lost_to": lost_to},
                        sends=[Send(p, abort) for p in ms.connected_members(ctx)])


def _yield_to(ctx, hive_id, theirs, peer_id) -> None:
    for row in _holding(ctx, theirs["intent_type"], theirs["target"]):
        if row["initiator"] != ctx.node_id:
            continue
        if row["state"] == "pending":
            _abort_ours(ctx, hive_id, row, theirs["intent_id"], peer_id)
        else:
            # Their commit meets ours: neither heard of the other in time (a round trip
            # longer than the hold). Nothing can undo it now; say so for the operator.
            log.warning("intent.both_committed", ours=row["intent_id"],
                        theirs=theirs["intent_id"], target=theirs["target"])


def on_intent_abort(ctx, peer_id: str, msg: dict, auth) -> None:
    meta = auth.meta
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


# -- the tick: announce commits, execute, clean up ------------------------------------------
def on_tick(ctx) -> None:
    committed = [r for r in store.in_state(ctx.db.conn(), "committed")
                 if r["data"].get("role") == "local"]
    if committed:
        peers = ms.connected_members(ctx)
        with ctx.db.transaction() as conn:
            for row in committed:
                notice = _intent_message(row["data"]["intent"], row["data"]["sig"],
                                         committed=True)
                for peer in peers:
                    outbox.add(conn, peer_id=peer, msg_hex=notice, now=ctx.clock.now())
        if ctx.drain is not None:
            ctx.drain()          # the commit notices leave before anything is executed
        for row in committed:
            execute(ctx, row["intent_id"])
    now = ctx.clock.now()
    with ctx.db.transaction() as conn:
        removed = store.delete_finished(conn, finished_before=now - CLEANUP_AFTER,
                                        created_before=now - ctx.config().intent_expire_seconds)
    if removed:
        log.info("intent.cleanup", removed=removed)


def execute(ctx, intent_id: str) -> None:
    """`executing` is committed before the executor runs: after a crash the intent is
    reconciled, never run twice."""
    inst = ctx.dispatcher.load(KIND, intent_id)
    intent = inst.data["intent"]
    executor = EXECUTORS[intent["intent_type"]]
    try:
        before = executor.before(ctx, intent)
    except ExecutionFailed as e:
        before = {"unknown": str(e)}
    if not ctx.dispatcher.fire(KIND, intent_id, "start_execution",
                               data_update={"before": before}).ok:
        return
    try:
        result = executor.execute(ctx, intent)
    except ExecutionFailed as e:
        _failed(ctx, intent_id, str(e))
        return
    except Exception as e:       # a bug in an executor: the intent must still end
        log.error("intent.executor_fault", intent_id=intent_id, error=repr(e), exc_info=True)
        _failed(ctx, intent_id, f"executor fault: {e!r}")
        return
    if isinstance(result, Pending):     # its call runs on the bridge's pool: ends on its outcome
        result.then(lambda res, why: _finished(ctx, intent_id, res, why))
        return
    _finished(ctx, intent_id, result, None)


def _finished(ctx, intent_id, result, why) -> None:
    if why is not None:
        return _failed(ctx, intent_id, why)
    ctx.dispatcher.fire(KIND, intent_id, "execution_succeeded", data_update={"result": result},
                        context=result)


def _failed(ctx, intent_id, why) -> None:
    ctx.dispatcher.fire(KIND, intent_id, "execution_failed", data_update={"failure": why},
                        context={"error": why})


def reconcile(ctx) -> None:
    """At start: an intent found `executing` was interrupted by a crash. Ask its executor
    whether the effect exists; never run it again."""
    for row in store.in_state(ctx.db.conn(), "executing"):
        intent = row["data"]["intent"]
        try:
            found = EXECUTORS[intent["intent_type"]].effect_exists(
                ctx, intent, row["data"].get("before", {}))
        except ExecutionFailed as e:
            found, note = None, f" ({e})"
        else:
            note = ""
        if found:
            ctx.dispatcher.fire(KIND, row["intent_id"], "execution_succeeded",
                                data_update={"result": {"reconciled": True}},
                                context={"reconciled": "effect found"})
            continue
        why = "interrupted by a restart; " + ("effect not found" if found is False else
                                             "cannot tell whether it took effect") + note
        _failed(ctx, row["intent_id"], why)


def listing(ctx) -> dict:
    return {"intents": [
        {"intent_id": r["intent_id"], "type": r["intent_type"], "target": r["target"],
         "initiator": r["initiator"], "role": r["data"].get("role"), "state": r["state"],
         "deadline": r["deadline"], "next": r["deadline_trigger"],
         "created_at": r["created_at"], "failure": r["data"].get("failure"),
         "result": r["data"].get("result")}
        for r in store.listing(ctx.db.conn())]}
