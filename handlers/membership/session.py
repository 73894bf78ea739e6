"""What both roles of the handshake share: the machine kinds, the open-session state sets
derived from the tables, the refusal log, and `awaiting` (the session a message moves,
judged by the machine's own rules at the instant the message arrived)."""
from __future__ import annotations

import structlog

from handlers.frame.refusals import refusal_log
from handlers.membership import members as ms
from handlers.wire import messages
from machines.handshake import ADMIN as ADMIN_TABLE

log = structlog.get_logger("hive.handshake")

JOINER, ADMIN = "handshake_joiner", "handshake_admin"
FEATURES = ["handshake/1"]
LIVE_JOINER = ms.LIVE_JOINER
LIVE_ADMIN = ADMIN_TABLE.live_states        # sessions that count against the bounds
ACTIVE_TIERS = ms.ACTIVE_TIERS


class Invariant(RuntimeError):
    """A rule checked just before changed under us: a bug, so the transaction rolls back."""


def must(outcome):
    if not outcome.ok:
        raise Invariant(f"{outcome.kind} {outcome.instance_id}: {outcome.trigger} refused "
                        f"({outcome.refused}) after it was allowed")
    return outcome


def refuse(peer_id: str, msg: str, reason: str, **extra) -> None:
    refusal_log(log, "handshake.refused", peer_id, msg=msg, reason=reason, **extra)


def _session_of(body) -> str | None:
    s = body.get("session") if isinstance(body, dict) else None
    try:
        return messages.SESSION(s)
    except ValueError:
        return None


def awaiting(ctx, peer_id, body, kind, triggers, msg, reason, scope=""):
    """(session, instance, now, trigger): the session this message moves and the first of
    `triggers` the machine's own rules let it fire at `now`, the instant the message
    arrived (right state, this peer, before the deadline, the session's flags); else the
    message is refused and None. Every trigger the message then fires is judged at that
    same `now`, so a deadline passing during the signature work cannot turn an allowed
    move into a refused one."""
    token = _session_of(body)
    if token is None:
        return refuse(peer_id, msg, "no session id")
    session = scope + token
    now = ctx.clock.now()
    for trigger in (triggers,) if isinstance(triggers, str) else triggers:
        if ctx.dispatcher.allows(kind, session, trigger, peer_id=peer_id, now=now):
            return session, ctx.dispatcher.load(kind, session), now, trigger
    return refuse(peer_id, msg, reason, session=token)
