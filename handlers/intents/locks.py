"""Intent locks (seed Phase 3): announce, hold, commit, execute at most once, with no
coordinator. One rule, applied the same way on every node:

- between two pending intents on the same type and target, the lower initiator pubkey
  wins (`winner`);
- a committed intent (or one executed within its lock window) beats a pending one
  whatever the keys. A member announces its commit (INTENT with its signed commit
  record) and answers a late rival with it, so the rival yields.

The rule is the intent_lock table's `conflict` trigger (guard `rival_prevails`): a local
intent that loses is aborted, a remote one is `outranked` (its owner may still commit it,
if our INTENT never reached it).

Channel opens and rebalances also need a majority's acknowledgements (`acks.py`), so
whatever the timing at most one of two rivals commits. Other intents commit at the end of
a quiet hold: both sides of a partition (or of delivery slower than the hold) may commit.
"""
from __future__ import annotations

import secrets

import structlog
from pyln.client import RpcException

from handlers.frame import errors
from handlers.frame.clock import unix
from handlers.frame.dispatch import Send
from handlers.frame.refusals import refusal_log
from handlers.intents import acks, rebalance
from handlers.intents.acks import FUTURE_SKEW
from handlers.intents.executors import NEEDS_AMOUNT
from handlers.membership import members as ms
from handlers.wire import messages, signing
from handlers.wire.framing import MsgType, encode
from machines import guards
from machines.intent_lock import SPEC
from storage import hive as hive_store
from storage import intents as store

log = structlog.get_logger("hive.intents")

KIND = SPEC.kind
HOLDS_LOCK = SPEC.groups["holds_lock"]
FINISHED = SPEC.terminal
# What one member may make us record: at most MAX_INTENTS_PER_WINDOW intents announced
# (signed `created_at`) within the last INTAKE_WINDOW seconds, whatever became of them
# (intents that end at once write rows and log entries too). A new INTENT older than the
# window is refused, so every accepted one is counted. The window is twice the longest
# hold the options allow, so even a commit notice (sent when the hold ends) that is the
# first we hear of an intent arrives inside it unless delivery took longer than a hold.
INTAKE_WINDOW = 7200
MAX_INTENTS_PER_WINDOW = 120
# Of a peer's finished intents outside the window, only the most recent are kept.
MAX_FINISHED_PER_INITIATOR = 100
CLEANUP_AFTER = 3600


# The seed's tie-breaker (the lexicographically lowest pubkey wins), as the table's
# `rival_prevails` guard applies it.
winner = guards.key_winner


def _refuse(peer_id, msg, reason, **extra):
    refusal_log(log, "intent.refused", peer_id, msg=msg, reason=reason, **extra)


def _holding(ctx, intent_type, target) -> list[dict]:
    return store.holding(ctx.db.conn(), intent_type, target, ctx.clock.now(), HOLDS_LOCK)


def _intent_message(intent, sig, commit=None) -> str:
    body = {"intent": intent, "sig": sig}
    if commit is not None:
        body["commit"] = commit
    return encode(MsgType.INTENT, body)


def commit_notice(row) -> str | None:
    """Our committed intent's INTENT with its signed commit (None for a row from before
    commits were signed: it cannot prove its commit)."""
    commit = row["data"].get("commit")
    return None if commit is None else _intent_message(row["data"]["intent"],
                                                       row["data"]["sig"], commit)


def _abort_message(ctx, hive_id, intent_id, reason) -> str:
    abort = {"intent_id": intent_id, "initiator": ctx.node_id, "aborted_at": ctx.now(),
             "reason": reason}
    return encode(MsgType.INTENT_ABORT, {
        "abort": abort, "sig": signing.sign(ctx.lightning, hive_id, "INTENT_ABORT", abort)})


def _lock_data(intent) -> dict:
    """What the intent_lock machine reads from an intent: its own hold and expiry (its
    deadlines on every node), and the end of its lock window, counted from its announce
    (the same instant on every node, up to clock skew), past which nothing commits or
    executes it."""
    return {"hold_seconds": intent["hold_seconds"], "expire_seconds": intent["expire_seconds"],
            "expires_at": intent["created_at"] + intent["expire_seconds"],
            "majority": acks.needs_majority(intent["intent_type"])}


def _key(intent) -> str:
    """The machine instance of an intent: (initiator, id), since a member picks its own
    ids and another member could reuse one it has seen."""
    return messages.intent_lock_id(intent["initiator"], intent["intent_id"])


def _domain(intent) -> dict:
    """The intent_locks columns beside the machine's own."""
    return {**{k: intent[k] for k in ("intent_id", "intent_type", "target", "initiator")},
            "announced_at": intent["created_at"],
            "expires_at": _lock_data(intent)["expires_at"]}


def _amount_fits(intent_type, amount) -> bool:
    return (amount is not None) == (intent_type in NEEDS_AMOUNT)


# -- hive-intent: announce ----------------------------------------------------------------
def announce(ctx, intent_type, target, amount_sat, from_channel=None, to_channel=None,
             max_fee_sats=None) -> dict:
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
    carried = rebalance.params(intent_type, {"from_channel": from_channel,
                                              "to_channel": to_channel,
                                              "max_fee_sats": max_fee_sats})
    meta = ms.require_hive(ctx)
    me = hive_store.member(ctx.db.conn(), ctx.node_id)
    if me is None or me["tier"] not in ms.ACTIVE_TIERS:
        raise RpcException("only an active member may announce intents", errors.NOT_ADMIN)
    # Peers refuse more than MAX_INTENTS_PER_WINDOW of ours announced within
    # INTAKE_WINDOW of their clock, which may run up to FUTURE_SKEW behind ours: never
    # send one they would drop.
    window = INTAKE_WINDOW + FUTURE_SKEW
    recent = store.announced_since_by(ctx.db.conn(), ctx.node_id, ctx.now() - window)
    if recent >= MAX_INTENTS_PER_WINDOW:
        raise RpcException(f"this node announced {recent} intents in the last {window} s; "
                           f"peers accept at most {MAX_INTENTS_PER_WINDOW} per "
                           f"{INTAKE_WINDOW} s", errors.TOO_MANY_INTENTS)
    # A target anyone already holds is not contested: preempting a pending rival late in
    # its hold is how two members would both end up executing.
    for row in _holding(ctx, intent_type, target):
        who = "our" if row["initiator"] == ctx.node_id else f"{row['initiator']}'s"
        raise RpcException(f"target: held by {who} intent {row['lock_id']} "
                           f"({row['state']})", errors.TARGET_HELD)
    word = acks.promised(ctx, intent_type, target) if acks.needs_majority(intent_type) else None
    if word is not None:
        raise RpcException(f"target: this node acknowledged intent {word} on it; free "
                           "once that intent is aborted or its lock window ends",
                           errors.TARGET_HELD)
    rebalance.check_channels(ctx, target, carried)
    config = ctx.config()
    intent = {"intent_id": secrets.token_hex(16), "intent_type": intent_type, "target": target,
              "initiator": ctx.node_id, "created_at": ctx.now(), "amount_sat": amount_sat,
              "hold_seconds": config.intent_hold_seconds,
              "expire_seconds": config.intent_expire_seconds, **carried}
    sig = signing.sign(ctx.lightning, meta["hive_id"], "INTENT", intent)
    # Signed now, sent only once the intent commits (when its hold ends), so a rival that
    # arrives after the commit is answered without signing anything.
    commit = {"intent_id": intent["intent_id"], "initiator": intent["initiator"],
              "committed_at": intent["created_at"] + intent["hold_seconds"]}
    commit["sig"] = signing.sign(ctx.lightning, meta["hive_id"], "INTENT_COMMIT", commit)
    msg = _intent_message(intent, sig)
    peers = ms.connected_members(ctx)
    with ctx.db.transaction() as conn:
        votes = acks.own(ctx, conn, intent, _key(intent), sig) \
            if acks.needs_majority(intent_type) else {}
        ctx.dispatcher.create(KIND, _key(intent),
                              domain=_domain(intent),
                              data={"role": "local", "intent": intent, "sig": sig,
                                    "commit": commit, **_lock_data(intent), **votes},
                              sends=[Send(p, msg) for p in peers])
    inst = ctx.dispatcher.load(KIND, _key(intent))
    return {"intent_id": intent["intent_id"], "initiator": intent["initiator"],
            "lock_id": _key(intent), "state": inst.state, "commits_at": unix(inst.deadline)}


# -- INTENT from a peer -------------------------------------------------------------------
def on_intent(ctx, peer_id: str, msg: dict, auth) -> None:
    meta = auth.meta
    intent, commit = messages.intent_record(msg["intent"]), msg["commit"]
    committed = commit is not None
    if intent["initiator"] != peer_id:
        return _refuse(peer_id, "INTENT", "initiator is not the sender")
    if committed and (commit["intent_id"], commit["initiator"]) != \
            (intent["intent_id"], intent["initiator"]):
        return _refuse(peer_id, "INTENT", "commit of another intent")
    if not _amount_fits(intent["intent_type"], intent["amount_sat"]):
        return _refuse(peer_id, "INTENT", "amount_sat does not fit the intent type")
    problem = rebalance.problem(intent)
    if problem:
        return _refuse(peer_id, "INTENT", problem)
    now = ctx.now()
    if intent["created_at"] > now + FUTURE_SKEW:
        return _refuse(peer_id, "INTENT", "created in the future")
    if intent["expire_seconds"] <= intent["hold_seconds"]:
        return _refuse(peer_id, "INTENT", "expire_seconds must exceed hold_seconds")
    if intent["created_at"] + intent["expire_seconds"] <= now:
        return _refuse(peer_id, "INTENT", "stale")
    if committed and not (intent["created_at"] + intent["hold_seconds"] <=
                          commit["committed_at"] <= now + FUTURE_SKEW):
        return _refuse(peer_id, "INTENT", "commit time outside its hold's end and now")
    known = ctx.dispatcher.load(KIND, _key(intent))
    if known is not None:
        if committed and known.data.get("role") == "remote" and \
                known.data["intent"] == intent:
            # The commit notice of an intent we know: a pending rival of ours yields.
            if known.data.get("commit") != commit and not _commit_signed(ctx, meta, commit):
                return _refuse(peer_id, "INTENT", "commit not signed by its initiator")
            return _commit_received(ctx, meta["hive_id"], intent, commit, peer_id)
        return _refuse(peer_id, "INTENT", "already known (replay)")
    if intent["created_at"] < now - INTAKE_WINDOW:
        return _refuse(peer_id, "INTENT", "older than the intake window")
    # Before any signature work: the bound is what protects it.
    if store.announced_since_by(ctx.db.conn(), peer_id, now - INTAKE_WINDOW) >= \
            MAX_INTENTS_PER_WINDOW:
        return _refuse(peer_id, "INTENT", "too many intents from this initiator")
    if not signing.verify(ctx.lightning, peer_id, meta["hive_id"], "INTENT", intent, msg["sig"]):
        return _refuse(peer_id, "INTENT", "not signed by its initiator")
    if committed and not _commit_signed(ctx, meta, commit):
        return _refuse(peer_id, "INTENT", "commit not signed by its initiator")
    ours = [r for r in _holding(ctx, intent["intent_type"], intent["target"])
            if r["initiator"] == ctx.node_id]
    with ctx.db.transaction() as conn:
        # Finished rows still in the window are what the bound counts: trim only older ones.
        store.trim_finished(conn, peer_id, MAX_FINISHED_PER_INITIATOR, FINISHED,
                            announced_before=now - INTAKE_WINDOW)
        ctx.dispatcher.create(KIND, _key(intent), peer_id=peer_id,
                              domain=_domain(intent),
                              data={"role": "remote", "intent": intent, "sig": msg["sig"],
                                    **_lock_data(intent)})
        if committed:
            ctx.dispatcher.fire(KIND, _key(intent), "commit_received", peer_id=peer_id,
                                data_update={"commit": commit})
        for row in ours:
            _resolve(ctx, meta["hive_id"], row, intent, committed, peer_id)
    # Our word on this target may be free (or just freed by our yielding): give it.
    acks.ack_next(ctx, meta["hive_id"], intent["intent_type"], intent["target"])


def _resolve(ctx, hive_id, ours, theirs, theirs_committed, peer_id) -> None:
    """Our intent that holds the target meets theirs. The table's `conflict` rule
    (`rival_prevails`) decides, fired on each intent with the other as its rival."""
    ours_committed = ours["state"] not in acks.UNCOMMITTED
    if _yields(ctx, ours, theirs["initiator"], theirs_committed):
        _abort_ours(ctx, hive_id, ours, theirs, theirs_committed, peer_id)
        return
    if ours_committed and theirs_committed:
        # Both committed: neither heard of the other within the hold. Nothing can undo
        # it now; say so loudly for the operator.
        log.warning("intent.both_committed", ours=ours["lock_id"], theirs=_key(theirs),
                    target=theirs["target"])
        return
    notice = []
    if ours_committed and commit_notice(ours) is not None:
        # A late rival: answer with our commit, so its initiator yields too.
        notice = [Send(peer_id, commit_notice(ours))]
    out = ctx.dispatcher.fire(KIND, _key(theirs), "conflict", peer_id=peer_id,
                              rival=ctx.node_id, rival_committed=ours_committed,
                              context={"lost_to": ours["lock_id"]}, sends=notice)
    if out.ok:
        log.info("intent.conflict_won", ours=ours["lock_id"], theirs=_key(theirs),
                 our_state=ours["state"])


def _yields(ctx, ours, rival, rival_committed) -> bool:
    """Would our intent lose to this rival (the table's rule, run on a copy)?"""
    return ctx.dispatcher.allows(KIND, ours["lock_id"], "conflict", rival=rival,
                                 rival_committed=rival_committed)


def _abort_ours(ctx, hive_id, ours, theirs, rival_committed, peer_id) -> None:
    log.info("intent.conflict_lost", ours=ours["lock_id"], theirs=_key(theirs))
    abort = _abort_message(ctx, hive_id, ours["intent_id"], "lost the tie-break")
    with ctx.db.transaction() as conn:
        out = ctx.dispatcher.fire(KIND, ours["lock_id"], "conflict", peer_id=peer_id,
                                  rival=theirs["initiator"], rival_committed=rival_committed,
                                  context={"lost_to": _key(theirs)},
                                  sends=[Send(p, abort) for p in ms.connected_members(ctx)])
        if out.ok:      # aborted: it never commits, so our word on its target is free
            acks.release(conn, ours["lock_id"])


def _commit_signed(ctx, meta, commit) -> bool:
    return signing.verify(ctx.lightning, commit["initiator"], meta["hive_id"], "INTENT_COMMIT",
                          messages.unsigned(commit), commit["sig"])


def _commit_received(ctx, hive_id, theirs, commit, peer_id) -> None:
    """The commit notice of a remote intent: it is committed (even one we had outranked,
    whose owner never heard of ours), and our pending rival on its target yields."""
    if ctx.dispatcher.allows(KIND, _key(theirs), "commit_received"):
        ctx.dispatcher.fire(KIND, _key(theirs), "commit_received", peer_id=peer_id,
                            data_update={"commit": commit})
    for row in _holding(ctx, theirs["intent_type"], theirs["target"]):
        if row["initiator"] != ctx.node_id:
            continue
        if _yields(ctx, row, theirs["initiator"], True):
            _abort_ours(ctx, hive_id, row, theirs, True, peer_id)
        else:
            # Their commit meets ours: neither heard of the other in time (a round trip
            # longer than the hold). Nothing can undo it now; say so for the operator.
            log.warning("intent.both_committed", ours=row["lock_id"], theirs=_key(theirs),
                        target=theirs["target"])


def on_intent_abort(ctx, peer_id: str, msg: dict, auth) -> None:
    meta = auth.meta
    abort = msg["abort"]
    if abort["initiator"] != peer_id:
        return _refuse(peer_id, "INTENT_ABORT", "initiator is not the sender")
    key = messages.intent_lock_id(abort["initiator"], abort["intent_id"])
    inst = ctx.dispatcher.load(KIND, key)
    if inst is None:
        return _refuse(peer_id, "INTENT_ABORT", "no such intent")
    if inst.data.get("role") != "remote" or inst.data["intent"]["initiator"] != peer_id:
        return _refuse(peer_id, "INTENT_ABORT", "not the sender's intent")
    if not signing.verify(ctx.lightning, peer_id, meta["hive_id"], "INTENT_ABORT", abort,
                          msg["sig"]):
        return _refuse(peer_id, "INTENT_ABORT", "not signed by its initiator")
    with ctx.db.transaction() as conn:
        out = ctx.dispatcher.fire(KIND, key, "abort_received", peer_id=peer_id,
                                  context={"reason": abort["reason"]})
        if out.ok:      # its initiator gave it up: it never commits, our word is free
            acks.release(conn, key)
    if out.ok:
        intent = inst.data["intent"]
        acks.ack_next(ctx, meta["hive_id"], intent["intent_type"], intent["target"])


def on_initiator_banned(ctx, peer_id: str) -> int:
    """A member was banned: its intents not committed yet stop holding their targets
    here, and our acknowledgement of each is free again (the next rival on the target may
    have it). Returns how many were aborted."""
    freed = []
    with ctx.db.transaction() as conn:
        for row in store.by_initiator_in(conn, peer_id, SPEC.groups["uncommitted"]):
            out = ctx.dispatcher.fire(KIND, row["lock_id"], "initiator_banned",
                                      context={"initiator": peer_id})
            if out.ok:
                acks.release(conn, row["lock_id"])
                freed.append(row)
    meta = hive_store.get_meta(ctx.db.conn())
    for row in freed:
        if meta is not None:
            acks.ack_next(ctx, meta["hive_id"], row["intent_type"], row["target"])
    if freed:
        log.info("intent.initiator_banned", initiator=peer_id, aborted=len(freed))
    return len(freed)


def listing(ctx) -> dict:
    return {"intents": [
        {"lock_id": r["lock_id"], "intent_id": r["intent_id"], "type": r["intent_type"],
         "target": r["target"],
         "initiator": r["initiator"], "role": r["data"].get("role"), "state": r["state"],
         "deadline": unix(r["deadline"]), "next": r["deadline_trigger"],
         "created_at": unix(r["created_at"]), "failure": r["data"].get("failure"),
         # a majority intent of ours: acknowledgements so far, and how many it needs
         **({"acks": len(r["data"].get("acks") or {}), "quorum": r["data"]["quorum"]}
            if "quorum" in r["data"] else {}),
         "result": r["data"].get("result")}
        for r in store.listing(ctx.db.conn())]}
