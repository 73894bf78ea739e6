"""Every incoming hive message: decode it once, then hand it to its family's handler."""
from __future__ import annotations

import structlog

from handlers import gossip, handshake, intents
from handlers.wire import MsgType, WireError, decode

log = structlog.get_logger("hive.wire")

HANDLERS = {
    MsgType.HELLO: handshake.on_hello,
    MsgType.CHALLENGE: handshake.on_challenge,
    MsgType.ATTEST: handshake.on_attest,
    MsgType.WELCOME: handshake.on_welcome,
    MsgType.MEMBER_ADDED: handshake.on_member_added,
    MsgType.GOSSIP: gossip.on_gossip,
    MsgType.STATE_HASH: gossip.on_state_hash,
    MsgType.FULL_SYNC: gossip.on_full_sync,
    MsgType.DIGEST: gossip.on_digest,
    MsgType.INTENT: intents.on_intent,
    MsgType.INTENT_ABORT: intents.on_intent_abort,
}


def on_message(ctx, peer_id: str, payload_hex: str) -> None:
    try:
        msg_type, body = decode(payload_hex)
    except WireError as e:
        log.info("wire.rejected", peer_id=peer_id, reason=str(e))
        return
    handler = HANDLERS.get(msg_type)
    if handler is None:
        log.debug("wire.unhandled", peer_id=peer_id, msg=msg_type.name)
        return
    handler(ctx, peer_id, body)
