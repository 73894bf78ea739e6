"""Every incoming hive message: recognise it, authorize its sender, decode and parse it,
then hand it to its wing's handler. The router sits above the wings it routes to.

Messages between members (`Route.schema` set) are authorized before their payload is even
decoded: this node is in a hive and an active member of it, the sender is an active
member and not banned. Their
handlers get the parsed body and what authorization established (`Authorized`).
Handshake messages come from nodes that are not members yet; their handlers parse them.
A refusal is logged under the family's name (`<family>.refused`) and dropped.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import structlog

from handlers.council import leave as council_leave
from handlers.council import proposals as council
from handlers.council import sync as council_sync
from handlers.frame.refusals import refusal_log
from handlers.hivemap import gossip, sync
from handlers.intents import acks as intent_acks
from handlers.intents import locks as intents
from handlers.membership import handshake
from handlers.membership import members as ms
from handlers.wire import messages
from handlers.wire.framing import MsgType, WireError, decode, peek
from storage import hive as hive_store

log = structlog.get_logger("hive.wire")


@dataclass(frozen=True)
class Authorized:
    """What the router established before a member's message reached its handler."""
    meta: dict              # the hive we are in (storage.hive.get_meta)
    members: frozenset      # the active members' ids, the sender among them


@dataclass(frozen=True)
class Route:
    handler: Callable
    family: str                  # refusals are logged as `<family>.refused`
    schema: dict | None = None   # set: a member's message, parsed and authorized here
    # Read-only work ahead of `handler` (see `prefetch`), for a member's message.
    prefetch: Callable | None = None


def _on_welcome(ctx, peer_id: str, body: dict) -> None:
    """WELCOME brings the joiner its own admission and the admin's; when it made us a
    member, the membership sync with the admin brings the rest (the handshake sits below
    the council, so the router joins the two)."""
    before = _member(ctx)
    handshake.on_welcome(ctx, peer_id, body)
    if not before and _member(ctx):
        council_sync.on_joined(ctx, peer_id)


def _member(ctx) -> bool:
    return ctx.node_id in ms.active_ids(ctx.db.conn())


ROUTES = {
    MsgType.HELLO: Route(handshake.on_hello, "handshake"),
    MsgType.CHALLENGE: Route(handshake.on_challenge, "handshake"),
    MsgType.ATTEST: Route(handshake.on_attest, "handshake"),
    MsgType.WELCOME: Route(_on_welcome, "handshake"),
    MsgType.JOIN_REFUSED: Route(handshake.on_join_refused, "handshake"),
    MsgType.MEMBER_ADDED: Route(handshake.on_member_added, "handshake", messages.MEMBER_ADDED),
    MsgType.GOSSIP: Route(gossip.on_gossip, "gossip", messages.GOSSIP, gossip.prefetch_gossip),
    MsgType.STATE_HASH: Route(sync.on_state_hash, "gossip", messages.STATE_HASH),
    MsgType.FULL_SYNC: Route(sync.on_full_sync, "gossip", messages.FULL_SYNC),
    MsgType.DIGEST: Route(sync.on_digest, "gossip", messages.DIGEST),
    MsgType.INTENT: Route(intents.on_intent, "intent", messages.INTENT_MSG),
    MsgType.INTENT_ABORT: Route(intents.on_intent_abort, "intent", messages.INTENT_ABORT_MSG),
    MsgType.PROPOSAL: Route(council.on_proposal, "council", messages.PROPOSAL_MSG),
    MsgType.VOTE: Route(council.on_vote, "council", messages.VOTE_MSG),
    MsgType.DECISION: Route(council.on_decision, "council", messages.DECISION_MSG),
    MsgType.LEAVE: Route(council_leave.on_leave, "council", messages.LEAVE_MSG),
    MsgType.MEMBERSHIP_HASH: Route(council_sync.on_membership_hash, "council",
                                   messages.MEMBERSHIP_HASH),
    MsgType.MEMBERSHIP_SYNC: Route(council_sync.on_membership_sync, "council",
                                   messages.MEMBERSHIP_SYNC),
    MsgType.INTENT_ACK: Route(intent_acks.on_intent_ack, "intent", messages.INTENT_ACK_MSG),
}


def authorize(ctx, peer_id: str) -> Authorized | str:
    """The sender may send member messages; else the reason it may not."""
    meta, banned, members = hive_store.sender_view(ctx.db.conn(), ms.ACTIVE_TIERS)
    if meta is None:
        return "this node is not in a hive"
    if peer_id in banned:
        return "sender is banned"
    if peer_id not in members:
        return "sender is not a member"
    if ctx.node_id not in members:
        return "this node is not an active member (it left or was banned)"
    return Authorized(meta, members)


def on_message(ctx, peer_id: str, payload_hex: str, parsed: dict | None = None) -> None:
    """`parsed`: the member message `prefetch` already decoded and parsed from this very
    payload (a pure function of it); the sender is authorized again here all the same."""
    msg_type = peek(payload_hex)
    route = None if msg_type is None else ROUTES.get(MsgType(msg_type))
    if route is None:
        log.debug("wire.unhandled", peer_id=peer_id)
        return
    name = MsgType(msg_type).name

    def refuse(reason: str) -> None:
        refusal_log(log, f"{route.family}.refused", peer_id, msg=name, reason=reason)

    auth = None
    if route.schema is not None:
        auth = authorize(ctx, peer_id)     # before decoding: a stranger's payload costs nothing
        if isinstance(auth, str):
            return refuse(auth)
        if parsed is not None:
            return route.handler(ctx, peer_id, parsed, auth)
    try:
        _, body = decode(payload_hex)
    except WireError as e:
        log.info("wire.rejected", peer_id=peer_id, msg=name, reason=str(e))
        return
    if route.schema is None:
        route.handler(ctx, peer_id, body)
        return
    try:
        msg = messages.parse(route.schema, body)
    except WireError as e:
        return refuse(f"malformed: {e}")
    route.handler(ctx, peer_id, msg, auth)


def prefetch(ctx, peer_id: str, payload_hex: str) -> dict | None:
    """Ahead of `on_message`, for a burst of messages before any is applied: what the
    handler will ask lightningd (a signature check), gathered so that the burst's
    questions are asked together (engine `gather`). It changes nothing and refuses
    nothing: a message that fails a check here is left for `on_message` to refuse, and
    only an authorized member's message costs a question.
    Returns the parsed message, for `on_message`'s `parsed`."""
    msg_type = peek(payload_hex)
    route = None if msg_type is None else ROUTES.get(MsgType(msg_type))
    if route is None or route.prefetch is None:
        return None
    auth = authorize(ctx, peer_id)
    if isinstance(auth, str):
        return None
    try:
        msg = messages.parse(route.schema, decode(payload_hex)[1])
    except WireError:
        return None
    route.prefetch(ctx, peer_id, msg, auth)
    return msg


class Incoming:
    """One peer message on its way through the worker: what `prefetch` parsed (when the
    message is applied in a batch) is not parsed again."""

    def __init__(self, ctx, peer_id: str, payload_hex: str):
        self.ctx, self.peer_id, self.payload_hex = ctx, peer_id, payload_hex
        self._parsed = None

    def prefetch(self) -> None:
        self._parsed = prefetch(self.ctx, self.peer_id, self.payload_hex)

    def handle(self) -> None:
        on_message(self.ctx, self.peer_id, self.payload_hex, parsed=self._parsed)
