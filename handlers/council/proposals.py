"""Promotion, ban and unban by signed votes: the operator's commands (`hive-request-promotion`,
`hive-vouch`, `hive-ban`, `hive-unban`, `hive-vote`) and every member's side of PROPOSAL,
VOTE and DECISION.

A proposal is broadcast when opened; votes go to every connected member with the proposal
they are for, so each node tallies them itself and decides once the yes votes of current
voters reach the quorum. The node whose own vote completed the quorum broadcasts the
DECISION (the proposal with the yes votes), which each receiver verifies vote by vote
before applying. What a node missed reaches it through the
membership anti-entropy (handlers.council.sync)."""
from __future__ import annotations

import structlog
from pyln.client import RpcException

from handlers.council import apply, records, view
from handlers.frame import errors
from handlers.frame.refusals import refusal_log
from handlers.membership import members as ms
from handlers.membership import rights
from handlers.wire import messages, signing
from handlers.wire.framing import MsgType, encode
from machines.guards import majority_quorum
from storage import council as store
from storage import hive as hive_store
from storage import outbox

log = structlog.get_logger("hive.council")

MAX_REASON = 256


def refuse(peer_id: str, msg: str, reason: str, **extra) -> None:
    refusal_log(log, "council.refused", peer_id, msg=msg, reason=reason, **extra)


def broadcast(ctx, *msgs: str) -> None:
    peers = ms.connected_members(ctx)
    with ctx.db.transaction() as conn:
        for peer in peers:
            for msg in msgs:
                outbox.add(conn, peer_id=peer, msg_hex=msg, now=ctx.clock.now())


# -- the operator's commands ---------------------------------------------------------------
def _node_param(name: str, value) -> str:
    try:
        return messages.node_id(value)
    except ValueError as e:
        raise errors.bad_param(name, str(e)) from None


def _reason_param(value) -> str:
    value = "" if value is None else value
    if not isinstance(value, str) or len(value) > MAX_REASON:
        raise errors.bad_param("reason", f"expected a string of at most {MAX_REASON} characters")
    return value


def our_row(ctx, right: str) -> dict:
    ms.require_hive(ctx)
    me = hive_store.member(ctx.db.conn(), ctx.node_id)
    tier = me["tier"] if me else None
    if not rights.may(tier, right):
        raise RpcException(f"a {tier or 'non-member'} may not {right.replace('_', ' ')} "
                           f"(allowed: {', '.join(rights.RIGHTS[right])})", errors.NOT_ALLOWED)
    return me


def probation_ends(ctx, admission: dict) -> int:
    return admission["admitted_at"] + ctx.config().probation_days * 86400


def open_proposal(ctx, kind: str, target: str, reason: str, subject: str) -> dict:
    """Sign, store and broadcast a proposal of ours."""
    meta = ms.require_hive(ctx)
    now = ctx.now()
    fields = {"hive_id": meta["hive_id"], "kind": kind, "target": target,
              "proposer": ctx.node_id, "subject": subject, "reason": reason,
              "created_at": now,
              "expires_at": now + ctx.config().proposal_expire_hours * 3600}
    signed = {**fields, "sig": signing.sign(ctx.lightning, meta["hive_id"], "PROPOSAL", fields)}
    pid = records.proposal_id(meta["hive_id"], fields)
    with ctx.db.transaction() as conn:
        store.add_proposal(conn, pid, signed)
    broadcast(ctx, encode(MsgType.PROPOSAL, {"proposal": signed}))
    log.info("council.proposed", kind=kind, target=target, proposal_id=pid)
    return {"proposal_id": pid, "kind": kind, "target": target,
            "expires_at": fields["expires_at"]}


def _open_for(conn, target: str, kind: str, now: int) -> dict | None:
    for row in store.proposals_for(conn, target, kind):
        if view.status_of(conn, row, now) == "open":
            return row
    return None


def request_promotion(ctx) -> dict:
    me = our_row(ctx, "request_promotion")
    ends = probation_ends(ctx, me["admission"])
    if ctx.now() < ends:
        raise RpcException(f"on probation until {ends} (hive-probation-days)",
                           errors.NOT_ALLOWED)
    held = _open_for(ctx.db.conn(), ctx.node_id, "promote", ctx.now())
    if held is not None:        # asked again: the open request, sent again
        broadcast(ctx, encode(MsgType.PROPOSAL, {"proposal": held["record"]}))
        return {"proposal_id": held["proposal_id"], "kind": "promote",
                "target": ctx.node_id, "expires_at": held["expires_at"]}
    return open_proposal(ctx, "promote", ctx.node_id, "",
                         records.admission_ref(me["admission"]))


def vouch(ctx, peer_id) -> dict:
    peer_id = _node_param("peer_id", peer_id)
    our_row(ctx, "vouch")
    conn = ctx.db.conn()
    target = hive_store.member(conn, peer_id)
    if target is None or target["tier"] != "neophyte":
        raise errors.bad_param("peer_id", "not a neophyte of this hive"
                               + (f" ({target['tier']})" if target else ""))
    if ctx.now() < probation_ends(ctx, target["admission"]):
        raise errors.bad_param("peer_id", "still on probation (hive-probation-days)")
    held = _open_for(conn, peer_id, "promote", ctx.now())
    if held is None:
        raise errors.bad_param("peer_id", "has no open promotion request "
                               "(it runs hive-request-promotion)")
    return cast_vote(ctx, held["proposal_id"], "yes")


def open_ban_proposal(ctx, target, reason) -> dict:
    """`hive-ban`: open a ban proposal on `target` and vote yes on it ourselves. Also the
    entry point for ban proposals that cl-hive starts itself (governance's `ban`)."""
    target = _node_param("peer_id", target)
    reason = _reason_param(reason)
    our_row(ctx, "propose_ban")
    conn = ctx.db.conn()
    row = hive_store.member(conn, target)
    if row is None:
        raise errors.bad_param("peer_id", "not a member of this hive")
    if target == ctx.node_id:
        raise errors.bad_param("peer_id", "is this node itself")
    if row["tier"] == "admin":
        raise errors.bad_param("peer_id", "is the hive's admin, who cannot be banned")
    if row["tier"] == "banned":
        raise errors.bad_param("peer_id", "is banned already")
    held = _open_for(conn, target, "ban", ctx.now())
    if held is not None:
        return cast_vote(ctx, held["proposal_id"], "yes")
    opened = open_proposal(ctx, "ban", target, reason, records.admission_ref(row["admission"]))
    return {**opened, **cast_vote(ctx, opened["proposal_id"], "yes")}


def ban_proposed(ctx, target: str) -> bool:
    """Is a ban of `target` open or decided (so opening one again would add nothing)?"""
    conn = ctx.db.conn()
    now = ctx.now()
    return any(view.status_of(conn, row, now) in ("open", "decided")
               for row in store.proposals_for(conn, target, "ban"))


def unban(ctx, target, reason) -> dict:
    target = _node_param("peer_id", target)
    reason = _reason_param(reason)
    our_row(ctx, "propose_ban")
    conn = ctx.db.conn()
    row = hive_store.member(conn, target)
    if row is None or row["tier"] != "banned":
        raise errors.bad_param("peer_id", "not a banned member of this hive")
    ref = records.admission_ref(row["admission"])
    bans = [p for p in store.proposals_for(conn, target, "ban")
            if p["decided_at"] is not None and p["subject"] == ref]
    if not bans:
        raise errors.bad_param("peer_id", "no ban decision is held for it")
    held = _open_for(conn, target, "unban", ctx.now())
    if held is not None:
        return cast_vote(ctx, held["proposal_id"], "yes")
    opened = open_proposal(ctx, "unban", target, reason, bans[-1]["proposal_id"])
    return {**opened, **cast_vote(ctx, opened["proposal_id"], "yes")}


def vote(ctx, proposal_id, choice) -> dict:
    try:
        messages.REF(proposal_id)
    except ValueError as e:
        raise errors.bad_param("proposal_id", str(e)) from None
    if choice not in messages.CHOICES:
        raise errors.bad_param("choice", "expected one of yes|no")
    our_row(ctx, "vote")
    conn = ctx.db.conn()
    row = store.proposal(conn, proposal_id)
    if row is None:
        raise errors.bad_param("proposal_id", "no such proposal")
    status = view.status_of(conn, row, ctx.now())
    if status != "open":
        raise errors.bad_param("proposal_id", f"is {status}, not open")
    if row["target"] == ctx.node_id:
        raise errors.bad_param("proposal_id", "is about this node, which does not vote on it")
    return cast_vote(ctx, proposal_id, choice)


def cast_vote(ctx, pid: str, choice: str) -> dict:
    """Sign our vote, keep it, send it with its proposal, and decide if it made the quorum."""
    meta = ms.require_hive(ctx)
    fields = {"proposal_id": pid, "voter": ctx.node_id, "choice": choice,
              "voted_at": ctx.now()}
    held = store.vote_of(ctx.db.conn(), pid, ctx.node_id)
    if held is not None and held["voted_at"] >= fields["voted_at"]:
        fields["voted_at"] = held["voted_at"] + 1      # a change of mind must be newer
    signed = {**fields, "sig": signing.sign(ctx.lightning, meta["hive_id"], "VOTE", fields)}
    with ctx.db.transaction() as conn:
        store.put_vote(conn, signed)
    proposal = store.proposal(ctx.db.conn(), pid)["record"]
    broadcast(ctx, encode(MsgType.VOTE, {"proposal": proposal, "vote": signed}))
    decided = tally(ctx, pid)
    return {"proposal_id": pid, "choice": choice, "decided": decided}


def tally(ctx, pid: str, *, broadcast_decision: bool = True) -> bool:
    """Decide `pid` if its stored yes votes of current voters reach the quorum: record it,
    settle the target and (usually) broadcast the DECISION. True when it is decided."""
    conn = ctx.db.conn()
    row = store.proposal(conn, pid)
    if row is None or row["decided_at"] is not None:
        return row is not None
    if view.status_of(conn, row, ctx.now()) != "open":
        return False
    eligible = records.voters(conn, row["target"])
    yes = [v for v in store.votes(conn, pid) if v["choice"] == "yes" and v["voter"] in eligible]
    if len(yes) < majority_quorum(len(eligible)):
        return False
    with ctx.db.transaction() as c:
        store.decide(c, pid, ctx.clock.now(), len(yes), len(eligible))
    apply.settle(ctx, row["target"])
    if broadcast_decision:
        # At most MAX_VOTES fit one message; beyond 399 voters the majority does not (the
        # members still decide from the VOTE messages they receive: README, known limits).
        if majority_quorum(len(eligible)) > messages.MAX_VOTES:
            log.warning("council.decision_not_broadcast", proposal_id=pid, votes=len(yes),
                        reason=f"a majority of {len(eligible)} voters does not fit one message")
        else:
            proof = sorted(yes, key=lambda v: v["voter"])[:messages.MAX_VOTES]
            broadcast(ctx, encode(MsgType.DECISION,
                                  {"decision": {"proposal": row["record"], "votes": proof}}))
    return True


# -- every member: PROPOSAL, VOTE, DECISION --------------------------------------------------
def take_proposal(ctx, hive_id: str, signed: dict) -> tuple[str, str | None]:
    """(its id, why it was refused or None): store a proposal we did not hold."""
    pid = records.proposal_id(hive_id, messages.unsigned(signed))
    if store.proposal(ctx.db.conn(), pid) is not None:
        return pid, None
    problem = records.proposal_problem(ctx, hive_id, signed, opening=True)
    if problem is None:
        with ctx.db.transaction() as conn:
            store.add_proposal(conn, pid, signed)
    return pid, problem


def on_proposal(ctx, peer_id: str, msg: dict, auth) -> None:
    if not ctx.council_limiter.allow(peer_id):
        return refuse(peer_id, "PROPOSAL", "rate limited")
    signed = msg["proposal"]
    pid, problem = take_proposal(ctx, auth.meta["hive_id"], signed)
    if problem:
        return refuse(peer_id, "PROPOSAL", problem, kind=signed["kind"],
                      target=signed["target"])
    log.info("council.proposal", peer_id=peer_id, proposal_id=pid, kind=signed["kind"],
             target=signed["target"], proposer=signed["proposer"])
    if signed["kind"] == "promote":
        auto_vouch(ctx, pid, signed["target"])


def auto_vouch(ctx, pid: str, target: str) -> None:
    """`hive-auto-vouch`: vouch once for a neophyte off probation whose score passes."""
    cfg = ctx.config()
    conn = ctx.db.conn()
    me = hive_store.member(conn, ctx.node_id)
    row = hive_store.member(conn, target)
    if not cfg.auto_vouch or me is None or not rights.may(me["tier"], "vouch") \
            or row is None or store.vote_of(conn, pid, ctx.node_id) is not None:
        return
    if ctx.now() < probation_ends(ctx, row["admission"]):
        return log.info("council.auto_vouch_skipped", target=target, why="on probation")
    score = view.scores(ctx).get(target, {}).get("score", 0.0)
    if score < cfg.auto_vouch_min_score:
        return log.info("council.auto_vouch_skipped", target=target, score=score,
                        why="score below hive-auto-vouch-min-score")
    cast_vote(ctx, pid, "yes")


def on_vote(ctx, peer_id: str, msg: dict, auth) -> None:
    if not ctx.council_limiter.allow(peer_id):
        return refuse(peer_id, "VOTE", "rate limited")
    hive_id, signed = auth.meta["hive_id"], msg["vote"]
    pid = records.proposal_id(hive_id, messages.unsigned(msg["proposal"]))
    row = store.proposal(ctx.db.conn(), pid)
    if row is not None and row["decided_at"] is not None:
        return log.debug("council.vote_after_decision", peer_id=peer_id, proposal_id=pid)
    pid, problem = take_proposal(ctx, hive_id, msg["proposal"])
    if problem:
        return refuse(peer_id, "VOTE", f"proposal: {problem}", proposal_id=pid)
    problem = take_vote(ctx, hive_id, pid, signed)
    if problem:
        return refuse(peer_id, "VOTE", problem, proposal_id=pid, voter=signed["voter"])
    log.info("council.vote", peer_id=peer_id, proposal_id=pid, voter=signed["voter"],
             choice=signed["choice"])
    # The voter's own node sends the DECISION its vote completed; we only apply it.
    tally(ctx, pid, broadcast_decision=False)


def take_vote(ctx, hive_id: str, pid: str, signed: dict) -> str | None:
    conn = ctx.db.conn()
    row = store.proposal(conn, pid)
    if view.status_of(conn, row, ctx.now()) != "open":
        return f"proposal is {view.status_of(conn, row, ctx.now())}"
    held = store.vote_of(conn, pid, signed["voter"])
    if held is not None and held["voted_at"] >= signed["voted_at"]:
        return "not newer than the vote held from this voter"
    problem = records.vote_problem(ctx, hive_id, pid, row["record"], signed,
                                   records.voters(conn, row["target"]))
    if problem:
        return problem
    with ctx.db.transaction() as c:
        if not store.put_vote(c, signed):
            return "not newer than the vote held from this voter"
    return None


def take_decision(ctx, hive_id: str, decision: dict) -> str | None:
    """Verify a decision and apply it; why it was refused, or None. A decision we hold
    already is no news."""
    pid = records.proposal_id(hive_id, messages.unsigned(decision["proposal"]))
    row = store.proposal(ctx.db.conn(), pid)
    if row is not None and row["decided_at"] is not None:
        return None
    problem, yes, eligible = records.decision_problem(ctx, hive_id, decision)
    if problem:
        return problem
    with ctx.db.transaction() as conn:
        store.add_proposal(conn, pid, decision["proposal"])
        for v in yes:           # only the votes that were verified and counted
            store.put_vote(conn, v)
        store.decide(conn, pid, ctx.clock.now(), len(yes), eligible)
    apply.settle(ctx, decision["proposal"]["target"])
    return None


def on_decision(ctx, peer_id: str, msg: dict, auth) -> None:
    if not ctx.council_limiter.allow(peer_id):
        return refuse(peer_id, "DECISION", "rate limited")
    decision = msg["decision"]
    problem = take_decision(ctx, auth.meta["hive_id"], decision)
    if problem:
        return refuse(peer_id, "DECISION", problem, kind=decision["proposal"]["kind"],
                      target=decision["proposal"]["target"])
    log.info("council.decision", peer_id=peer_id, kind=decision["proposal"]["kind"],
             target=decision["proposal"]["target"], votes=len(decision["votes"]))
