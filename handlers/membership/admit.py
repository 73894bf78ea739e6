"""The admin's side of the handshake: HELLO (check the ticket, open a session, send a
CHALLENGE), ATTEST (admit the joiner, or give a joiner this ticket already admitted its
admission again), and every member's side of MEMBER_ADDED."""
from __future__ import annotations

import secrets

from handlers.frame.dispatch import Send
from handlers.membership import members as ms
from handlers.wire import messages, signing
from handlers.wire.framing import MsgType, WireError, encode
from storage import hive as hive_store
from storage import outbox
from handlers.membership.session import (ACTIVE_TIERS, ADMIN, LIVE_ADMIN, Invariant, awaiting,
                                         must, refuse)

# -- admin: HELLO ---------------------------------------------------------------------
def on_hello(ctx, peer_id: str, body: dict) -> None:
    if not ctx.hello_limiter.allow(peer_id):
        return refuse(peer_id, "HELLO", "rate limited")
    meta = hive_store.get_meta(ctx.db.conn())
    conn = ctx.db.conn()
    me = hive_store.member(conn, ctx.node_id) if meta else None
    if me is None or me["tier"] != "admin":
        return refuse(peer_id, "HELLO", "this node admits no one (not a hive admin)")
    try:
        hello = messages.parse(messages.HELLO, body)
        fields, sig = ms.decode_ticket(hello["ticket"])
    except WireError as e:
        return refuse(peer_id, "HELLO", f"malformed: {e}")
    # The joiner this very ticket admitted says HELLO again: its WELCOME came too late.
    # It gets a fresh challenge and then its stored admission back (`attest_valid_again`).
    again = ms.admitted_by(conn, peer_id, fields["ticket_id"])
    known = hive_store.member(conn, peer_id)
    if known is not None and known["tier"] in ACTIVE_TIERS and not again:
        return refuse(peer_id, "HELLO", f"already a member ({known['tier']})")
    if hive_store.is_banned(conn, peer_id):
        # Told only to the holder of a ticket we issued: a stranger learns nothing.
        if ms.ticket_unknown(ctx, conn, meta, fields) is None:
            return refuse_join(ctx, peer_id, hello["session"], ms.REFUSALS["banned"])
        return refuse(peer_id, "HELLO", "banned")
    if known is not None and not again:
        # A node that left keeps its row and comes back on a new ticket (`readmit`), on
        # probation again.
        if known["tier"] != "left":
            return refuse(peer_id, "HELLO", f"rejoining after {known['tier']} is not supported")
        if fields["tier"] != "neophyte":
            return refuse(peer_id, "HELLO", "a returning member comes back as a neophyte "
                          "(this ticket grants member)")
    problem = ms.ticket_problem(ctx, conn, peer_id, meta, fields, again)
    if problem:
        return refuse_join(ctx, peer_id, hello["session"], problem)
    session_id = f"{peer_id}:{hello['session']}"
    if ctx.dispatcher.load(ADMIN, session_id) is not None:
        return refuse(peer_id, "HELLO", "duplicate of a known session")
    if hive_store.session_for_peer(conn, ADMIN, peer_id, LIVE_ADMIN):
        return refuse(peer_id, "HELLO", "a session with this peer is already open")
    # One per ticket too: strangers sharing a leaked ticket hold one slot, not them all.
    if hive_store.session_for_ticket(conn, ADMIN, fields["ticket_id"], LIVE_ADMIN):
        return refuse(peer_id, "HELLO", "a session with this ticket is already open")
    if hive_store.open_sessions(conn, ADMIN, LIVE_ADMIN) >= ctx.config().max_handshake_sessions:
        return refuse(peer_id, "HELLO", "too many open sessions (hive-max-handshake-sessions)")
    if not signing.verify(ctx.lightning, ctx.node_id, meta["hive_id"], "TICKET", fields, sig):
        return refuse(peer_id, "HELLO", "ticket signature does not verify")
    nonce = secrets.token_hex(32)
    ctx.dispatcher.create(
        ADMIN, session_id, domain={"peer_id": peer_id, "ticket_id": fields["ticket_id"]},
        peer_id=peer_id,
        data={"peer_id": peer_id, "session": hello["session"], "nonce": nonce,
              "ticket_id": fields["ticket_id"], "tier": fields["tier"], "admitted": again},
        sends=[Send(peer_id, encode(MsgType.CHALLENGE, {
            "session": hello["session"], "hive_id": meta["hive_id"], "nonce": nonce}))])


def refuse_join(ctx, peer_id: str, session: str, problem: str, msg: str = "HELLO") -> None:
    """Refuse a HELLO (or an ATTEST); when the reason is one the ticket's holder may know
    (`ms.REFUSALS`), tell the joiner in an unsigned JOIN_REFUSED, so its hive-join ends at
    once. Those answers are rate-limited across all peers: each costs us nothing but a
    message, yet a flood of HELLOs must not become a flood of answers."""
    reason = ms.REFUSAL_CODES.get(problem)
    limiter = ctx.join_refusal_limiter
    if reason is None or (limiter is not None and not limiter.allow("join_refused")):
        return refuse(peer_id, msg, problem)
    refuse(peer_id, msg, problem, answered=reason)
    answer = encode(MsgType.JOIN_REFUSED, {"session": session, "reason": reason})
    with ctx.db.transaction() as conn:
        outbox.add(conn, peer_id=peer_id, msg_hex=answer, now=ctx.clock.now())


# -- admin: ATTEST --------------------------------------------------------------------
def on_attest(ctx, peer_id: str, body: dict) -> None:
    # The admin's table picks the rule (a first admission, or the same one again).
    found = awaiting(ctx, peer_id, body, ADMIN, tuple(ATTEST_RULES), "ATTEST",
                      "no open session awaits it", scope=f"{peer_id}:")
    if found is None:
        return
    session_id, inst, now, trigger = found
    meta = hive_store.get_meta(ctx.db.conn())
    precondition, welcome = ATTEST_RULES[trigger]
    problem = _attest_problem(ctx, peer_id, body, inst, meta, precondition)
    if problem:
        ctx.dispatcher.fire(ADMIN, session_id, "attest_invalid", peer_id=peer_id, now=now,
                            data_update={"failure": problem})
        if problem in ms.REFUSAL_CODES:     # the ticket or the room went meanwhile
            refuse_join(ctx, peer_id, inst.data["session"], problem, msg="ATTEST")
        return
    welcome(ctx, peer_id, session_id, inst, meta, now)


def _can_admit(ctx, peer_id, inst) -> str | None:
    ticket = hive_store.get_ticket(ctx.db.conn(), inst.data["ticket_id"])
    if ticket is None or ticket["used_by"] is not None:
        return ms.REFUSALS["ticket_used"]
    # Several sessions may be open at once: the hive may have filled up since HELLO.
    if len(ms.active_members(ctx.db.conn())) >= ctx.config().max_members:
        return ms.REFUSALS["hive_full"]
    return None


def _still_admitted(ctx, peer_id, inst) -> str | None:
    if not ms.admitted_by(ctx.db.conn(), peer_id, inst.data["ticket_id"]):
        return "no longer a member admitted by this ticket"
    return None


def _admit(ctx, peer_id, session_id, inst, meta, now) -> None:
    """Use the ticket, add the member, WELCOME it and announce it, in one transaction."""
    hive_id = meta["hive_id"]
    admission = ms.sign_admission(ctx, hive_id, peer_id, inst.data["tier"],
                                  inst.data["ticket_id"])
    active = ms.active_members(ctx.db.conn())
    announce = encode(MsgType.MEMBER_ADDED, {"hive_id": hive_id, "admission": admission})
    welcome = _welcome(ctx, inst, meta, admission)
    with ctx.db.transaction() as conn:
        if not hive_store.use_ticket(conn, inst.data["ticket_id"], peer_id, ctx.clock.now()):
            raise Invariant("ticket consumed while its session was open")
        ms.record_admission(ctx, admission, peer_id=peer_id)
        must(ctx.dispatcher.fire(
            ADMIN, session_id, "attest_valid", peer_id=peer_id, now=now,
            sends=[Send(peer_id, welcome)]
            + [Send(m["peer_id"], announce) for m in active if m["peer_id"] != ctx.node_id]))


def _welcome_again(ctx, peer_id, session_id, inst, meta, now) -> None:
    """The stored admission again: the joiner lost its first WELCOME. The ticket stays
    used once, the member added once, announced once."""
    admission = hive_store.member(ctx.db.conn(), peer_id)["admission"]
    must(ctx.dispatcher.fire(
        ADMIN, session_id, "attest_valid_again", peer_id=peer_id, now=now,
        sends=[Send(peer_id, _welcome(ctx, inst, meta, admission))]))


def _welcome(ctx, inst, meta, admission: dict) -> str:
    """The joiner's admission and ours, enough to start: one message whatever the hive's
    size. Every other member reaches the joiner by the membership sync it then asks us for
    (MEMBERSHIP_HASH, answered in paced chunks)."""
    ours = hive_store.member(ctx.db.conn(), ctx.node_id)["admission"]
    return encode(MsgType.WELCOME, {
        "session": inst.data["session"], "hive_id": meta["hive_id"],
        "genesis": meta["genesis"], "admission": admission, "members": [ours]})


# trigger -> (what must still hold at ATTEST, what a valid ATTEST then does)
ATTEST_RULES = {"attest_valid": (_can_admit, _admit),
                "attest_valid_again": (_still_admitted, _welcome_again)}


def _attest_problem(ctx, peer_id, body, inst, meta, precondition) -> str | None:
    try:
        attest = messages.parse(messages.ATTEST, body)
    except WireError as e:
        return f"ATTEST malformed: {e}"
    if attest["pubkey"] != peer_id:
        return "ATTEST pubkey is not the sender's"
    if attest["nonce"] != inst.data["nonce"]:
        return "ATTEST nonce is not this session's"
    problem = precondition(ctx, peer_id, inst)
    if problem:
        return problem
    manifest = {"session": inst.data["session"], "nonce": attest["nonce"], "pubkey": peer_id,
                "admin": ctx.node_id, "plugin_version": attest["plugin_version"],
                "features": attest["features"]}
    if not signing.verify(ctx.lightning, peer_id, meta["hive_id"], "ATTEST", manifest,
                          attest["sig"]):
        return "ATTEST signature is not the sender's"
    return None


# -- member: MEMBER_ADDED -------------------------------------------------------------
def on_member_added(ctx, peer_id: str, msg: dict, auth) -> None:
    meta = auth.meta
    conn = ctx.db.conn()
    admission = msg["admission"]
    if msg["hive_id"] != meta["hive_id"] or admission["hive_id"] != meta["hive_id"]:
        return refuse(peer_id, "MEMBER_ADDED", "for another hive")
    problem = ms.admission_problem(conn, admission)
    if problem:
        return refuse(peer_id, "MEMBER_ADDED", problem, member=admission["member"])
    if admission["tier"] == "admin":
        return refuse(peer_id, "MEMBER_ADDED", "an admission cannot grant admin")
    if not signing.verify(ctx.lightning, meta["admin_id"], meta["hive_id"], "ADMISSION",
                          messages.unsigned(admission), admission["sig"]):
        return refuse(peer_id, "MEMBER_ADDED", "admission is not signed by the hive's admin")
    ms.record_admission(ctx, admission, peer_id=peer_id)
