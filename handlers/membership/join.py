"""The joiner's side of the handshake: `hive-join` (check the ticket, reach the admin, open
the session and send HELLO), then CHALLENGE (sign the ATTEST) and WELCOME (check every
record, then record the hive and its members)."""
from __future__ import annotations

import secrets

from pyln.client import RpcError, RpcException

from handlers import __version__
from handlers.frame import errors
from handlers.frame.dispatch import Send
from handlers.membership import members as ms
from handlers.wire import messages, signing
from handlers.wire.framing import MsgType, WireError, encode
from storage import hive as hive_store
from handlers.membership.session import (FEATURES, JOINER, LIVE_JOINER, awaiting, must,
                                         refuse)

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
    try:
        fields, sig = ms.decode_ticket(ticket)
    except WireError as e:
        raise errors.bad_param("ticket", str(e)) from None
    _not_in_hive(ctx, fields["hive_id"])
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


def _not_in_hive(ctx, hive_id: str) -> None:
    """A node belongs to one hive; one that left it may join it again."""
    meta = hive_store.get_meta(ctx.db.conn())
    if meta is not None and not ms.returning(ctx.db.conn(), hive_id, ctx.node_id):
        raise RpcException(f"already in hive {meta['hive_id']} ({meta['name']})",
                           errors.ALREADY_IN_HIVE)


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
    _not_in_hive(ctx, plan["fields"]["hive_id"])
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


def join_answer(ctx, session: str, waited: int | None = None) -> dict:
    """What hive-join answers: the joined node's hive, or an error naming why not (the
    admin's refusal, a failed check, the handshake's timeout, or, with `waited`, hive-join's
    own `timeout` while the session still runs)."""
    result = join_result(ctx, session)
    state, reason = result["state"], result.get("reason")
    details = {"session": session, "state": state, "admin": result["admin"]}
    if state == "joined":
        return {k: v for k, v in result.items() if k != "done"}
    if state == "refused":
        code = ctx.dispatcher.load(JOINER, session).data["refused"]
        raise errors.OperatorError(f"{code}: {reason}", errors.JOIN_REFUSED,
                                   reason=code, **details)
    if state == "failed":
        raise errors.OperatorError(f"the handshake failed: {reason}", errors.JOIN_FAILED,
                                   reason=reason, **details)
    if state == "expired":
        raise errors.OperatorError(f"the handshake timed out: {reason}", errors.TIMEOUT,
                                   reason=reason, **details)
    why = (f"timeout: no end within {waited} s; the handshake goes on ({state}) and ends "
           "by itself (hive-handshake-timeout-seconds)")
    raise errors.OperatorError(why, errors.TIMEOUT, reason=why, **details)


EXPIRED_AFTER_ATTEST = ("no WELCOME came before the handshake timeout; the admin may have "
                        "admitted this node all the same: run hive-join again with the same "
                        "ticket to complete the join")


def _joined_meanwhile(ctx, hive_id: str) -> bool:
    return hive_store.get_meta(ctx.db.conn()) is not None and \
        not ms.returning(ctx.db.conn(), hive_id, ctx.node_id)


# -- joiner: CHALLENGE ----------------------------------------------------------------
def on_challenge(ctx, peer_id: str, body: dict) -> None:
    # Only a challenge to our own HELLO, from that admin, may make us sign.
    found = awaiting(ctx, peer_id, body, JOINER, "challenge_valid", "CHALLENGE",
                      "no open session of ours awaits it")
    if found is None:
        return
    session, inst, now, _ = found
    try:
        challenge = messages.parse(messages.CHALLENGE, body)
        if challenge["hive_id"] != inst.data["hive_id"]:
            raise WireError("hive_id differs from the ticket's")
        if _joined_meanwhile(ctx, inst.data["hive_id"]):
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
    must(ctx.dispatcher.fire(
        JOINER, session, "challenge_valid", peer_id=peer_id, now=now,
        data_update={"attested": True},     # from now on the admin may admit us
        sends=[Send(peer_id, encode(MsgType.ATTEST, {**attest, "sig": sig}))]))


# -- joiner: JOIN_REFUSED -------------------------------------------------------------
def on_join_refused(ctx, peer_id: str, body: dict) -> None:
    """The admin refused our HELLO (or ATTEST) and said why. Taken only for a live session
    of ours whose peer is the sender (`awaiting`): no one else can end our join."""
    found = awaiting(ctx, peer_id, body, JOINER, "refused", "JOIN_REFUSED",
                     "no open session of ours awaits it")
    if found is None:
        return
    session, _, now, _ = found
    try:
        refusal = messages.parse(messages.JOIN_REFUSED, body)
    except WireError as e:
        return refuse(peer_id, "JOIN_REFUSED", f"malformed: {e}", session=session)
    must(ctx.dispatcher.fire(JOINER, session, "refused", peer_id=peer_id, now=now,
                             data_update={"refused": refusal["reason"],
                                          "failure": REFUSED_BECAUSE[refusal["reason"]]}))


# What the operator reads for each reason the admin may give.
REFUSED_BECAUSE = {
    "ticket_used": "the admin refused the ticket: it was used already",
    "ticket_expired": "the admin refused the ticket: it has expired",
    "ticket_bound": "the admin refused the ticket: it is bound to another node",
    "hive_full": "the admin refused the join: the hive is full (its hive-max-members)",
    "banned": "the admin refused the join: this node is banned from the hive",
}


# -- joiner: WELCOME ------------------------------------------------------------------
def on_welcome(ctx, peer_id: str, body: dict) -> None:
    found = awaiting(ctx, peer_id, body, JOINER, "welcome_valid", "WELCOME",
                      "no session of ours sent ATTEST to this peer")
    if found is None:
        return
    session, inst, now, _ = found
    try:
        welcome = messages.parse(messages.WELCOME, body)
        if _joined_meanwhile(ctx, inst.data["hive_id"]):
            raise WireError("this node joined a hive meanwhile")
        _check_welcome(ctx, peer_id, welcome, inst.data)
    except WireError as e:
        ctx.dispatcher.fire(JOINER, session, "welcome_invalid", peer_id=peer_id, now=now,
                            data_update={"failure": f"WELCOME: {e}"})
        return
    genesis = welcome["genesis"]
    with ctx.db.transaction() as conn:
        if hive_store.get_meta(conn) is None:
            hive_store.set_meta(conn, hive_id=welcome["hive_id"], name=genesis["name"],
                                admin_id=genesis["admin"], genesis=genesis,
                                joined_at=ctx.clock.now())
        # Coming back, we know most of them: new ones are added, returns readmitted, and
        # what we hold already (or cannot take) is left for the membership sync.
        for admission in [welcome["admission"], *welcome["members"]]:
            if ms.admission_problem(conn, admission) is None:
                ms.record_admission(ctx, admission, peer_id=peer_id)
        must(ctx.dispatcher.fire(JOINER, session, "welcome_valid", peer_id=peer_id,
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
