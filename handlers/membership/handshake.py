"""The handshake, HELLO → CHALLENGE → ATTEST → WELCOME, for both roles, and the admin's
MEMBER_ADDED announcement to the rest of the hive.

Each incoming message is checked cheapest first: session and sender (through the
machine's own rules, `Dispatcher.allows`) before any signature work, so unsolicited or
replayed messages cost nothing and never make us sign. A check that fails on a message
of a live session from that session's peer is the machine's `*_invalid` trigger; any
other refusal is logged and dropped. Nothing is ever sent back about a refusal.
"""
from __future__ import annotations

import secrets

import structlog
from pyln.client import RpcError, RpcException

from handlers import __version__
from handlers.frame import errors
from handlers.frame.dispatch import Send
from handlers.frame.refusals import refusal_log
from handlers.membership import members as ms
from handlers.wire import messages, signing
from handlers.wire.framing import MsgType, WireError, encode
from machines.handshake import ADMIN as ADMIN_TABLE
from storage import hive as hive_store

log = structlog.get_logger("hive.handshake")

JOINER, ADMIN = "handshake_joiner", "handshake_admin"
FEATURES = ["handshake/1"]
LIVE_JOINER = ms.LIVE_JOINER
LIVE_ADMIN = ADMIN_TABLE.live_states        # sessions that count against the bounds
ACTIVE_TIERS = ms.ACTIVE_TIERS


class Invariant(RuntimeError):
    """A rule checked just before changed under us: a bug, so the transaction rolls back."""


def _must(outcome):
    if not outcome.ok:
        raise Invariant(f"{outcome.kind} {outcome.instance_id}: {outcome.trigger} refused "
                        f"({outcome.refused}) after it was allowed")
    return outcome


def _refuse(peer_id: str, msg: str, reason: str, **extra) -> None:
    refusal_log(log, "handshake.refused", peer_id, msg=msg, reason=reason, **extra)


def _session_of(body) -> str | None:
    s = body.get("session") if isinstance(body, dict) else None
    try:
        return messages.SESSION(s)
    except ValueError:
        return None


# -- joiner: hive-join ----------------------------------------------------------------
def start_join(ctx, ticket, address) -> str:
    """Check the ticket, reach the admin, open the session and queue HELLO, all at once
    (`connect` on the caller's thread). The running plugin splits it instead
    (`Hive.join`): `connect` runs on the bridge's pool, between `check_join` and
    `open_join`."""
    plan = check_join(ctx, ticket, address)
    target = connect_target(ctx, plan)
    if target is not None:
        try:
            ctx.lightning.call("connect", {"id": target})
        except RpcError as e:
            message = e.error.get("message") if isinstance(e.error, dict) else str(e)
            raise unreachable(plan, message) from None
    return open_join(ctx, plan)


def check_join(ctx, ticket, address) -> dict:
    """Everything about a hive-join that needs no peer: the plan `open_join` carries out."""
    meta = hive_store.get_meta(ctx.db.conn())
    if meta is not None:
        raise RpcException(f"already in hive {meta['hive_id']} ({meta['name']})",
                           errors.ALREADY_IN_HIVE)
    try:
        fields, sig = ms.decode_ticket(ticket)
    except WireError as e:
        raise errors.bad_param("ticket", str(e)) from None
    # An expired ticket may still finish a join it began: the admin may have admitted us
    # on it (our ATTEST went out) and only its WELCOME was lost.
    if fields["expires_at"] <= ctx.now() and not hive_store.attested_with_ticket(
            ctx.db.conn(), JOINER, fields["ticket_id"]):
        raise errors.bad_param("ticket", f"expired at {fields['expires_at']}")
    if fields["peer_id"] is not None and fields["peer_id"] != ctx.node_id:
        raise errors.bad_param("ticket", f"issued for node {fields['peer_id']}, not this one")
    admin = fields["admin"]
    if admin == ctx.node_id:
        raise errors.bad_param("ticket", "issued by this node itself")
    if not signing.verify(ctx.lightning, admin, fields["hive_id"], "TICKET", fields, sig):
        raise errors.bad_param("ticket", "the signature is not the issuing admin's")
    if address is not None and not isinstance(address, str):
        raise errors.bad_param("address", "expected host:port")
    _not_busy(ctx)
    return {"ticket": ticket, "fields": fields, "admin": admin, "address": address}


def _not_busy(ctx) -> None:
    if hive_store.open_sessions(ctx.db.conn(), JOINER, LIVE_JOINER):
        raise RpcException("a hive-join is already in progress; wait for it to end",
                           errors.HANDSHAKE_BUSY)


def connect_target(ctx, plan: dict) -> str | None:
    """What `connect` must reach (`id` or `id@address`), or None: the admin is connected."""
    admin, address = plan["admin"], plan["address"]
    peers = ctx.lightning.call("listpeers", {"id": admin}).get("peers", [])
    if peers and peers[0].get("connected"):
        return None
    return admin if address is None else f"{admin}@{address}"


def unreachable(plan: dict, why: str) -> RpcException:
    """The operator's error for a `connect` that failed or timed out."""
    hint = "" if plan["address"] is not None else "; give address=host:port"
    return RpcException(f"address: cannot connect to admin {plan['admin']}: {why}{hint}",
                        errors.PEER_UNREACHABLE)


def open_join(ctx, plan: dict) -> str:
    """The admin is reached: open the session and queue HELLO. What may have changed
    while `connect` ran is checked again."""
    meta = hive_store.get_meta(ctx.db.conn())
    if meta is not None:
        raise RpcException(f"already in hive {meta['hive_id']} ({meta['name']})",
                           errors.ALREADY_IN_HIVE)
    _not_busy(ctx)
    admin, fields = plan["admin"], plan["fields"]
    session = secrets.token_hex(16)
    ctx.dispatcher.create(
        JOINER, session, domain={"peer_id": admin, "ticket_id": fields["ticket_id"]},
        peer_id=admin,
        data={"peer_id": admin, "hive_id": fields["hive_id"], "ticket_id": fields["ticket_id"],
              "tier": fields["tier"]},
        sends=[Send(admin, encode(MsgType.HELLO, {"session": session,
                                                  "ticket": plan["ticket"]}))])
    return session


def join_result(ctx, session: str) -> dict:
    inst = ctx.dispatcher.load(JOINER, session)
    out = {"session": session, "state": inst.state, "admin": inst.data.get("peer_id"),
           "done": inst.state not in LIVE_JOINER}
    if inst.state == "joined":
        view = ms.members_view(ctx)
        out.update(hive_id=view["hive_id"], tier=view["our_tier"],
                   members=len(view["members"]))
    elif "failure" in inst.data:
        out["reason"] = inst.data["failure"]
    elif inst.state == "expired":
        out["reason"] = EXPIRED_AFTER_ATTEST if inst.data.get("attested") else \
            "the admin did not answer before the handshake timeout"
    return out


EXPIRED_AFTER_ATTEST = ("no WELCOME came before the handshake timeout; the admin may have "
                        "admitted this node all the same: run hive-join again with the same "
                        "ticket to complete the join")


# -- admin: HELLO ---------------------------------------------------------------------
def on_hello(ctx, peer_id: str, body: dict) -> None:
    if not ctx.hello_limiter.allow(peer_id):
        return _refuse(peer_id, "HELLO", "rate limited")
    meta = hive_store.get_meta(ctx.db.conn())
    conn = ctx.db.conn()
    me = hive_store.member(conn, ctx.node_id) if meta else None
    if me is None or me["tier"] != "admin":
        return _refuse(peer_id, "HELLO", "this node admits no one (not a hive admin)")
    try:
        hello = messages.parse(messages.HELLO, body)
        fields, sig = ms.decode_ticket(hello["ticket"])
    except WireError as e:
        return _refuse(peer_id, "HELLO", f"malformed: {e}")
    # The joiner this very ticket admitted says HELLO again: its WELCOME came too late.
    # It gets a fresh challenge and then its stored admission back (`attest_valid_again`).
    again = ms.admitted_by(conn, peer_id, fields["ticket_id"])
    known = hive_store.member(conn, peer_id)
    if known is not None and known["tier"] in ACTIVE_TIERS and not again:
        return _refuse(peer_id, "HELLO", f"already a member ({known['tier']})")
    if hive_store.is_banned(conn, peer_id):
        return _refuse(peer_id, "HELLO", "banned")
    if known is not None and not again:
        # A node that left keeps its row; coming back (`readmit`) is not built yet.
        return _refuse(peer_id, "HELLO", f"rejoining after {known['tier']} is not supported")
    problem = ms.ticket_problem(ctx, conn, peer_id, meta, fields, again)
    if problem:
        return _refuse(peer_id, "HELLO", problem)
    session_id = f"{peer_id}:{hello['session']}"
    if ctx.dispatcher.load(ADMIN, session_id) is not None:
        return _refuse(peer_id, "HELLO", "duplicate of a known session")
    if hive_store.session_for_peer(conn, ADMIN, peer_id, LIVE_ADMIN):
        return _refuse(peer_id, "HELLO", "a session with this peer is already open")
    # One per ticket too: strangers sharing a leaked ticket hold one slot, not them all.
    if hive_store.session_for_ticket(conn, ADMIN, fields["ticket_id"], LIVE_ADMIN):
        return _refuse(peer_id, "HELLO", "a session with this ticket is already open")
    if hive_store.open_sessions(conn, ADMIN, LIVE_ADMIN) >= ctx.config().max_handshake_sessions:
        return _refuse(peer_id, "HELLO", "too many open sessions (hive-max-handshake-sessions)")
    if not signing.verify(ctx.lightning, ctx.node_id, meta["hive_id"], "TICKET", fields, sig):
        return _refuse(peer_id, "HELLO", "ticket signature does not verify")
    nonce = secrets.token_hex(32)
    ctx.dispatcher.create(
        ADMIN, session_id, domain={"peer_id": peer_id, "ticket_id": fields["ticket_id"]},
        peer_id=peer_id,
        data={"peer_id": peer_id, "session": hello["session"], "nonce": nonce,
              "ticket_id": fields["ticket_id"], "tier": fields["tier"], "admitted": again},
        sends=[Send(peer_id, encode(MsgType.CHALLENGE, {
            "session": hello["session"], "hive_id": meta["hive_id"], "nonce": nonce}))])


# -- joiner: CHALLENGE ----------------------------------------------------------------
def _awaiting(ctx, peer_id, body, kind, triggers, msg, reason, scope=""):
    """(session, instance, now, trigger): the session this message moves and the first of
    `triggers` the machine's own rules let it fire at `now`, the instant the message
    arrived (right state, this peer, before the deadline, the session's flags); else the
    message is refused and None. Every trigger the message then fires is judged at that
    same `now`, so a deadline passing during the signature work cannot turn an allowed
    move into a refused one."""
    token = _session_of(body)
    if token is None:
        return _refuse(peer_id, msg, "no session id")
    session = scope + token
    now = ctx.clock.now()
    for trigger in (triggers,) if isinstance(triggers, str) else triggers:
        if ctx.dispatcher.allows(kind, session, trigger, peer_id=peer_id, now=now):
            return session, ctx.dispatcher.load(kind, session), now, trigger
    return _refuse(peer_id, msg, reason, session=token)


def on_challenge(ctx, peer_id: str, body: dict) -> None:
    # Only a challenge to our own HELLO, from that admin, may make us sign.
    found = _awaiting(ctx, peer_id, body, JOINER, "challenge_valid", "CHALLENGE",
                      "no open session of ours awaits it")
    if found is None:
        return
    session, inst, now, _ = found
    try:
        challenge = messages.parse(messages.CHALLENGE, body)
        if challenge["hive_id"] != inst.data["hive_id"]:
            raise WireError("hive_id differs from the ticket's")
        if hive_store.get_meta(ctx.db.conn()) is not None:
            raise WireError("this node joined a hive meanwhile")
    except WireError as e:
        ctx.dispatcher.fire(JOINER, session, "challenge_invalid", peer_id=peer_id, now=now,
                            data_update={"failure": f"CHALLENGE: {e}"})
        return
    manifest = {"session": session, "nonce": challenge["nonce"], "pubkey": ctx.node_id,
                "admin": peer_id, "plugin_version": __version__, "features": FEATURES}
    sig = signing.sign(ctx.lightning, inst.data["hive_id"], "ATTEST", manifest)
    attest = {k: manifest[k] for k in ("session", "nonce", "pubkey", "plugin_version",
                                       "features")}
    _must(ctx.dispatcher.fire(
        JOINER, session, "challenge_valid", peer_id=peer_id, now=now,
        data_update={"attested": True},     # from now on the admin may admit us
        sends=[Send(peer_id, encode(MsgType.ATTEST, {**attest, "sig": sig}))]))


# -- admin: ATTEST --------------------------------------------------------------------
def on_attest(ctx, peer_id: str, body: dict) -> None:
    # The admin's table picks the rule (a first admission, or the same one again).
    found = _awaiting(ctx, peer_id, body, ADMIN, tuple(ATTEST_RULES), "ATTEST",
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
        return
    welcome(ctx, peer_id, session_id, inst, meta, now)


def _can_admit(ctx, peer_id, inst) -> str | None:
    ticket = hive_store.get_ticket(ctx.db.conn(), inst.data["ticket_id"])
    if ticket is None or ticket["used_by"] is not None:
        return "ticket already used"
    # Several sessions may be open at once: the hive may have filled up since HELLO.
    if len(ms.active_members(ctx.db.conn())) >= ctx.config().max_members:
        return "hive is full (hive-max-members)"
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
    with ctx.db.transaction() as conn:
        if not hive_store.use_ticket(conn, inst.data["ticket_id"], peer_id, ctx.clock.now()):
            raise Invariant("ticket consumed while its session was open")
        ms.add_member(ctx, admission, peer_id=peer_id)
        _must(ctx.dispatcher.fire(
            ADMIN, session_id, "attest_valid", peer_id=peer_id, now=now,
            sends=[Send(peer_id, _welcome(inst, meta, admission, active))]
            + [Send(m["peer_id"], announce) for m in active if m["peer_id"] != ctx.node_id]))


def _welcome_again(ctx, peer_id, session_id, inst, meta, now) -> None:
    """The stored admission again, with today's member list: the joiner lost its first
    WELCOME. The ticket stays used once, the member added once, announced once."""
    conn = ctx.db.conn()
    admission = hive_store.member(conn, peer_id)["admission"]
    others = [m for m in ms.active_members(conn) if m["peer_id"] != peer_id]
    _must(ctx.dispatcher.fire(
        ADMIN, session_id, "attest_valid_again", peer_id=peer_id, now=now,
        sends=[Send(peer_id, _welcome(inst, meta, admission, others))]))


def _welcome(inst, meta, admission: dict, others: list[dict]) -> str:
    return encode(MsgType.WELCOME, {
        "session": inst.data["session"], "hive_id": meta["hive_id"],
        "genesis": meta["genesis"], "admission": admission,
        "members": [m["admission"] for m in others]})


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


# -- joiner: WELCOME ------------------------------------------------------------------
def on_welcome(ctx, peer_id: str, body: dict) -> None:
    found = _awaiting(ctx, peer_id, body, JOINER, "welcome_valid", "WELCOME",
                      "no session of ours sent ATTEST to this peer")
    if found is None:
        return
    session, inst, now, _ = found
    try:
        welcome = messages.parse(messages.WELCOME, body)
        if hive_store.get_meta(ctx.db.conn()) is not None:
            raise WireError("this node joined a hive meanwhile")
        _check_welcome(ctx, peer_id, welcome, inst.data)
    except WireError as e:
        ctx.dispatcher.fire(JOINER, session, "welcome_invalid", peer_id=peer_id, now=now,
                            data_update={"failure": f"WELCOME: {e}"})
        return
    genesis = welcome["genesis"]
    with ctx.db.transaction() as conn:
        hive_store.set_meta(conn, hive_id=welcome["hive_id"], name=genesis["name"],
                            admin_id=genesis["admin"], genesis=genesis,
                            joined_at=ctx.clock.now())
        for admission in [welcome["admission"], *welcome["members"]]:
            ms.add_member(ctx, admission, peer_id=peer_id)
        _must(ctx.dispatcher.fire(JOINER, session, "welcome_valid", peer_id=peer_id,
                                  now=now))


def _check_welcome(ctx, admin: str, welcome: dict, data: dict) -> None:
    """Raise WireError for the first thing wrong, cheapest checks first."""
    hive_id = welcome["hive_id"]
    genesis = welcome["genesis"]
    admission = welcome["admission"]
    if hive_id != data["hive_id"]:
        raise WireError("hive_id differs from the ticket's")
    if genesis["admin"] != admin or ms.hive_id_of(messages.unsigned(genesis)) != hive_id:
        raise WireError("genesis record does not define this hive and admin")
    if (admission["member"], admission["hive_id"], admission["tier"],
            admission["ticket_id"]) != (ctx.node_id, hive_id, data["tier"], data["ticket_id"]):
        raise WireError("our admission does not match our ticket")
    members = welcome["members"]
    seen = {m["member"] for m in members}
    if len(seen) != len(members) or ctx.node_id in seen:
        raise WireError("member list repeats a member or lists us")
    if not any(m["member"] == admin and m["tier"] == "admin" for m in members):
        raise WireError("member list lacks the admin")
    if any(m["hive_id"] != hive_id for m in members):
        raise WireError("member list holds another hive's admission")
    if not signing.verify(ctx.lightning, admin, hive_id, "GENESIS",
                          messages.unsigned(genesis), genesis["sig"]):
        raise WireError("genesis signature is not the admin's")
    for record in [admission, *members]:
        if not signing.verify(ctx.lightning, admin, hive_id, "ADMISSION",
                              messages.unsigned(record), record["sig"]):
            raise WireError(f"admission of {record['member']} is not signed by the admin")


# -- member: MEMBER_ADDED -------------------------------------------------------------
def on_member_added(ctx, peer_id: str, msg: dict, auth) -> None:
    meta = auth.meta
    conn = ctx.db.conn()
    admission = msg["admission"]
    if msg["hive_id"] != meta["hive_id"] or admission["hive_id"] != meta["hive_id"]:
        return _refuse(peer_id, "MEMBER_ADDED", "for another hive")
    if hive_store.member(conn, admission["member"]) is not None:
        return _refuse(peer_id, "MEMBER_ADDED", "already known", member=admission["member"])
    if admission["tier"] == "admin":
        return _refuse(peer_id, "MEMBER_ADDED", "an admission cannot grant admin")
    if not signing.verify(ctx.lightning, meta["admin_id"], meta["hive_id"], "ADMISSION",
                          messages.unsigned(admission), admission["sig"]):
        return _refuse(peer_id, "MEMBER_ADDED", "admission is not signed by the hive's admin")
    ms.add_member(ctx, admission, peer_id=peer_id)

