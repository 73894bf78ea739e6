"""`hive-genesis`, `hive-invite`, `hive-members`, and the records that prove membership:
the genesis record, invite tickets and admission records, all signed by the admin."""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets

from pyln.client import RpcException

from handlers.frame import errors
from handlers.membership import rights
from handlers.wire import messages, signing
from handlers.wire.framing import MAX_JSON_DEPTH, WireError, json_depth
from handlers.wire.messages import INVITE_TIERS
from machines.handshake import JOINER as JOINER_TABLE
from storage import hive as hive_store

TICKET_PREFIX = "HIVE1:"
LIVE_JOINER = JOINER_TABLE.live_states      # a join is in progress
ACTIVE_TIERS = ("neophyte", "member", "admin")
MAX_TICKET_CHARS = 2048


def hive_id_of(genesis: dict) -> str:
    """The hive id is derived from the genesis record, so it cannot be claimed apart from it."""
    return hashlib.sha256(signing.canonical_json(genesis).encode()).hexdigest()[:32]


def require_hive(ctx) -> dict:
    meta = hive_store.get_meta(ctx.db.conn())
    if meta is None:
        raise RpcException("this node is not in a hive: run hive-genesis or hive-join first",
                           errors.NOT_IN_HIVE)
    return meta


def active_members(conn) -> list[dict]:
    """Members that count: not banned (by tier or in the ban list), not left."""
    banned = hive_store.banned_ids(conn)
    return [m for m in hive_store.members(conn)
            if m["tier"] in ACTIVE_TIERS and m["peer_id"] not in banned]


def active_ids(conn) -> set[str]:
    """The ids of `active_members`, read without their admission records."""
    return hive_store.member_ids(conn, ACTIVE_TIERS)


def active_id_set(conn) -> frozenset[str]:
    """`active_ids`, not to be changed (asked for every member message)."""
    return hive_store.member_id_set(conn, ACTIVE_TIERS)


def connected_members(ctx, members: set[str] | None = None) -> list[str]:
    """Active members other than us that lightningd reports connected."""
    if members is None:
        members = active_ids(ctx.db.conn())
    peers = ctx.lightning.call("listpeers", {}).get("peers", [])
    return sorted(p["id"] for p in peers
                  if p.get("connected") and p["id"] in members and p["id"] != ctx.node_id)


def sign_admission(ctx, hive_id: str, member: str, tier: str, ticket_id: str | None) -> dict:
    fields = {"hive_id": hive_id, "member": member, "tier": tier,
              "admitted_at": ctx.now(), "ticket_id": ticket_id}
    return {**fields, "sig": signing.sign(ctx.lightning, hive_id, "ADMISSION", fields)}


def add_member(ctx, admission: dict, peer_id: str | None = None) -> None:
    """Create the member's tier machine in the tier its (already verified) admission grants."""
    ctx.dispatcher.create("member_tier", admission["member"], state=admission["tier"],
                          domain={"admission": json.dumps(admission, sort_keys=True)},
                          peer_id=peer_id, context={"admitted_by_ticket": admission["ticket_id"]})


def returning(conn, hive_id: str | None, node_id: str) -> bool:
    """Is `node_id` a member of hive `hive_id` that left (and may come back with a new
    ticket), as this node's records say?"""
    meta = hive_store.get_meta(conn)
    row = hive_store.member(conn, node_id)
    return meta is not None and meta["hive_id"] == hive_id and row is not None \
        and row["tier"] == "left"


def admission_problem(conn, admission: dict) -> str | None:
    """Why this (signature-checked) admission is not recorded: None for a node we do not
    know, or for a departed member's return (a newer admission, as a neophyte)."""
    known = hive_store.member(conn, admission["member"])
    if known is None:
        return None
    if known["admission"] == admission:
        return "already known"
    if known["tier"] != "left":
        return f"a second admission of a member that has not left ({known['tier']})"
    if admission["tier"] != "neophyte":
        return "a returning member comes back as a neophyte"
    # Seconds: a leave and a return may share one (the records differ, by their ticket).
    if admission["admitted_at"] < known["admission"]["admitted_at"]:
        return "an admission older than the one held"
    return None


def record_admission(ctx, admission: dict, peer_id: str | None = None) -> None:
    """A new member, or a departed member's return (admission_problem said None)."""
    if hive_store.member(ctx.db.conn(), admission["member"]) is None:
        add_member(ctx, admission, peer_id=peer_id)
    else:
        readmit_member(ctx, admission, peer_id=peer_id)


def readmit_member(ctx, admission: dict, peer_id: str | None = None) -> None:
    """A member that left comes back on a new (already verified) admission: the same row,
    its history kept, the `readmit` rule back to neophyte."""
    with ctx.db.transaction() as conn:
        hive_store.set_admission(conn, admission["member"], admission)
        outcome = ctx.dispatcher.fire("member_tier", admission["member"], "readmit",
                                      peer_id=peer_id,
                                      context={"admitted_by_ticket": admission["ticket_id"]})
        if not outcome.ok:
            raise RuntimeError(f"readmit of {admission['member']} refused: {outcome.refused}")


# -- hive-genesis ---------------------------------------------------------------------
def genesis(ctx, name) -> dict:
    if name is None:
        name = "hive"
    if not isinstance(name, str) or not 1 <= len(name) <= 64:
        raise errors.bad_param("name", "expected a string of 1 to 64 characters")
    existing = hive_store.get_meta(ctx.db.conn())
    if existing is not None:
        raise RpcException(f"already in hive {existing['hive_id']} ({existing['name']}); "
                           "a node belongs to one hive", errors.ALREADY_IN_HIVE)
    if hive_store.open_sessions(ctx.db.conn(), "handshake_joiner", LIVE_JOINER):
        raise RpcException("a hive-join is in progress; wait for it to end",
                           errors.HANDSHAKE_BUSY)
    record = {"name": name, "admin": ctx.node_id, "created_at": ctx.now(),
              "nonce": secrets.token_hex(16)}
    hive_id = hive_id_of(record)
    signed = {**record, "sig": signing.sign(ctx.lightning, hive_id, "GENESIS", record)}
    admission = sign_admission(ctx, hive_id, ctx.node_id, "admin", None)
    with ctx.db.transaction() as conn:
        hive_store.set_meta(conn, hive_id=hive_id, name=name, admin_id=ctx.node_id,
                            genesis=signed, joined_at=ctx.clock.now())
        add_member(ctx, admission)
    return {"hive_id": hive_id, "name": name, "admin": ctx.node_id}


# -- hive-invite ----------------------------------------------------------------------
def invite(ctx, valid_hours, tier, peer_id) -> dict:
    if valid_hours is None:
        valid_hours = ctx.config().ticket_valid_hours
    if type(valid_hours) is not int or not 1 <= valid_hours <= 720:
        raise errors.bad_param("valid_hours", "expected an integer from 1 to 720")
    tier = "neophyte" if tier is None else tier
    if tier not in INVITE_TIERS:
        raise errors.bad_param("tier", "expected one of " + "|".join(INVITE_TIERS))
    if peer_id is not None:
        try:
            messages.node_id(peer_id)
        except ValueError as e:
            raise errors.bad_param("peer_id", str(e)) from None
    meta = require_hive(ctx)
    me = hive_store.member(ctx.db.conn(), ctx.node_id)
    if me is None or not rights.may(me["tier"], "invite"):
        raise RpcException("only an admin may invite; this node is "
                           f"{me['tier'] if me else 'not a member'}", errors.NOT_ADMIN)
    if peer_id == ctx.node_id:
        raise errors.bad_param("peer_id", "is this node itself")
    now = ctx.now()
    fields = {"hive_id": meta["hive_id"], "admin": ctx.node_id, "tier": tier,
              "ticket_id": secrets.token_hex(16), "issued_at": now,
              "expires_at": now + valid_hours * 3600, "peer_id": peer_id}
    sig = signing.sign(ctx.lightning, meta["hive_id"], "TICKET", fields)
    with ctx.db.transaction() as conn:
        hive_store.add_ticket(conn, ticket_id=fields["ticket_id"], tier=tier, peer_id=peer_id,
                              issued_at=now, expires_at=fields["expires_at"])
    return {"ticket": encode_ticket({**fields, "sig": sig}), "ticket_id": fields["ticket_id"],
            "tier": tier, "expires_at": fields["expires_at"], "peer_id": peer_id}


def encode_ticket(signed: dict) -> str:
    raw = signing.canonical_json(signed).encode()
    return TICKET_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_ticket(text) -> tuple[dict, str]:
    """(the signed fields, the signature); WireError says what is wrong with the string."""
    if not isinstance(text, str) or not text.startswith(TICKET_PREFIX):
        raise WireError(f"not a cl-hive ticket (expected it to start with {TICKET_PREFIX})")
    if len(text) > MAX_TICKET_CHARS:
        raise WireError(f"longer than {MAX_TICKET_CHARS} characters")
    body = text[len(TICKET_PREFIX):]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("utf-8")
    except (binascii.Error, ValueError):
        raise WireError("not valid base64url") from None
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise WireError("nested too deeply")
    try:
        obj = json.loads(raw)
    except ValueError:
        raise WireError("not valid JSON") from None
    schema = {**messages.TICKET, "sig": messages.zbase}
    signed = messages.parse(schema, obj)
    # Exactly the canonical encoding of exactly these fields: then any altered character
    # is refused, even one that would leave the signed meaning intact (base64 decoders
    # skip stray characters).
    if set(obj) != set(schema) or encode_ticket(obj) != text:
        raise WireError("not in canonical form")
    return messages.unsigned(signed), signed["sig"]


# -- tickets at HELLO ----------------------------------------------------------------
# Why an admin refuses a HELLO whose ticket it issued (JOIN_REFUSED's reason codes, from
# handlers.wire.messages): what the ticket's holder can know already. Any other refusal
# is not told.
REFUSALS = {"ticket_used": "ticket already used", "ticket_expired": "ticket expired",
            "ticket_bound": "ticket is bound to another node",
            "hive_full": "hive is full (hive-max-members)", "banned": "banned"}
REFUSAL_CODES = {text: code for code, text in REFUSALS.items()}


def ticket_unknown(ctx, conn, meta, fields) -> str | None:
    """Why this admin did not issue this ticket as presented, if it did not: then its
    presenter is told nothing."""
    if fields["hive_id"] != meta["hive_id"] or fields["admin"] != ctx.node_id:
        return "ticket is for another hive or admin"
    issued = hive_store.get_ticket(conn, fields["ticket_id"])
    if issued is None or (issued["tier"], issued["peer_id"], issued["expires_at"]) != \
            (fields["tier"], fields["peer_id"], fields["expires_at"]):
        return "ticket was not issued by this admin as presented"
    return None


def ticket_problem(ctx, conn, peer_id, meta, fields, again) -> str | None:
    """Why this ticket opens no session for this peer, if it does not. A ticket that
    already admitted this peer (`again`) still proves that admission: used by it, expired
    since and counted among the members are then no reason to refuse."""
    problem = ticket_unknown(ctx, conn, meta, fields)
    if problem:
        return problem
    issued = hive_store.get_ticket(conn, fields["ticket_id"])
    if issued["used_by"] is not None and not again:
        return REFUSALS["ticket_used"]
    if fields["expires_at"] <= ctx.now() and not again:
        return REFUSALS["ticket_expired"]
    if fields["peer_id"] is not None and fields["peer_id"] != peer_id:
        return REFUSALS["ticket_bound"]
    if len(active_members(conn)) >= ctx.config().max_members and not again:
        return REFUSALS["hive_full"]
    return None


def admitted_by(conn, peer_id: str, ticket_id: str) -> bool:
    """Is the peer an active member admitted by exactly this ticket: its admission record
    names the ticket, and the ticket names it as its user?"""
    known = hive_store.member(conn, peer_id)
    ticket = hive_store.get_ticket(conn, ticket_id)
    return (known is not None and known["tier"] in ACTIVE_TIERS
            and known["admission"].get("ticket_id") == ticket_id
            and ticket is not None and ticket["used_by"] == peer_id
            and not hive_store.is_banned(conn, peer_id))


# -- hive-members ---------------------------------------------------------------------
def members_view(ctx) -> dict:
    meta = hive_store.get_meta(ctx.db.conn())
    if meta is None:        # the same keys as in a hive: scripts need not test for them
        return {"hive_id": None, "name": None, "admin": None, "our_id": ctx.known_node_id,
                "our_tier": None, "members": []}
    rows = hive_store.members(ctx.db.conn())
    ours = next((m["tier"] for m in rows if m["peer_id"] == ctx.node_id), None)
    return {
        "hive_id": meta["hive_id"], "name": meta["name"], "admin": meta["admin_id"],
        "our_id": ctx.node_id, "our_tier": ours,
        "members": [{"peer_id": m["peer_id"], "tier": m["tier"],
                     "admitted_at": m["admission"].get("admitted_at")} for m in rows],
    }
