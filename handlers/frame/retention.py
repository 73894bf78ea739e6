"""The tick's retention step: at most once an hour, prune what is older than
`hive-log-retention-days` (the transition log, finished handshake sessions and pending
actions, expired tickets), in one transaction, and log what went."""
from __future__ import annotations

import structlog

from machines import SPECS
from storage import retention as store

log = structlog.get_logger("hive.retention")

PRUNE_EVERY_SECONDS = 3600
# Kinds whose finished instances are pruned. Intent locks are trimmed by their own rules
# (per initiator), and members are never pruned.
PRUNED_KINDS = ("handshake_joiner", "handshake_admin", "pending_action")


def terminal_states() -> dict[str, tuple[str, ...]]:
    return {kind: SPECS[kind].terminal for kind in PRUNED_KINDS}


def on_tick(ctx) -> None:
    now = ctx.clock.now()
    if not ctx.every("last_prune", PRUNE_EVERY_SECONDS):
        return
    config = ctx.config()
    with ctx.db.transaction() as conn:
        pruned = store.prune(conn, before=now - config.log_retention_seconds,
                             terminal=terminal_states())
    log.info("retention.pruned", retention_days=config.log_retention_days, pruned=pruned)
