"""The health part of `hive-status`: the numbers a person checks first, and warnings for
what they should act on. The same keys whether or not this node is in a hive."""
from __future__ import annotations

from handlers.membership import members as ms
from storage import hivemap, outbox

# A member broadcasts at least once per heartbeat; two missed is worth a look.
STALE_HEARTBEATS = 2
# Messages wait in the outbox while their peer is away; this many, or this old, is not a
# moment's disconnection any more.
OUTBOX_BACKLOG_WARN = 100
OUTBOX_AGE_WARN_SECONDS = 900


def _warn(code: str, message: str) -> dict:
    return {"code": code, "message": message}


def health(ctx, *, connected: set[str], bridge: dict, machine_counts: dict) -> dict:
    """`members_total` counts this node; `members_connected` the other members lightningd
    has connected. `connected`: the peers lightningd told us are connected (from its notifications);
    `bridge`: the bridge's companion view; `machine_counts`: {kind: {state: n}}."""
    conn = ctx.db.conn()
    config = ctx.config()
    now = ctx.now()
    warnings: list[dict] = []
    active = ms.active_ids(conn)
    in_hive = bool(active) and ctx.node_id in active     # no node id asked outside a hive
    others = sorted(active - {ctx.node_id}) if in_hive else []
    up = [p for p in others if p in connected]
    if not in_hive:
        warnings.append(_warn("not_in_hive", "this node is in no hive: hive-genesis creates "
                                             "one, hive-join <ticket> joins one"))
    elif len(up) < len(others):
        warnings.append(_warn("members_disconnected",
                              f"{len(others) - len(up)} of {len(others)} other members not "
                              "connected: `lightning-cli connect` them, or check their nodes"))

    ages = {}
    if in_hive:
        states = {e["state"]["peer_id"]: e["state"] for e in hivemap.all_entries(conn)}
        ages = {p: (now - int(states[p]["timestamp"]) if p in states else None)
                for p in others + [ctx.node_id]}
        limit = STALE_HEARTBEATS * config.heartbeat_interval
        stale = [p for p, age in ages.items() if age is None or age > limit]
        if stale:
            warnings.append(_warn("stale_member_state",
                                  f"{len(stale)} member(s) with no HiveMap state newer than "
                                  f"{limit} s (2 heartbeats): see hive-topology"))
    known = [a for a in ages.values() if a is not None]

    for name, comp in sorted(bridge.items()):
        if not comp["detected"] and comp["missing_reason"] != "not checked yet":
            warnings.append(_warn("companion_missing",
                                  f"{name} not available ({comp['missing_reason']}): cl-hive "
                                  "runs without it, with what it offers turned off"))
        if comp["breaker"]["state"] != "closed":
            warnings.append(_warn("breaker_open",
                                  f"{name}'s circuit breaker is {comp['breaker']['state']} "
                                  f"after {comp['breaker']['consecutive_failures']} failed "
                                  f"calls (last error: {comp['last_error']})"))

    waiting = machine_counts.get("pending_action", {}).get("awaiting_approval", 0)
    if waiting:
        warnings.append(_warn("actions_waiting",
                              f"{waiting} action(s) await your approval: "
                              "hive-pending-actions awaiting_approval"))

    backlog = outbox.pending_count(conn)
    oldest = outbox.oldest_pending_at(conn)
    oldest_age = None if oldest is None else max(0, now - int(oldest))
    if backlog >= OUTBOX_BACKLOG_WARN or (oldest_age or 0) >= OUTBOX_AGE_WARN_SECONDS:
        warnings.append(_warn("outbox_backlog",
                              f"{backlog} message(s) wait to be sent, the oldest for "
                              f"{oldest_age} s: are members reachable?"))

    return {
        "in_hive": in_hive,
        "members_connected": len(up),
        "members_total": len(others) + (1 if in_hive else 0),
        "pending_actions_waiting": waiting,
        "oldest_member_state_age_seconds": max(known) if known else None,
        "outbox_backlog": backlog,
        "outbox_oldest_age_seconds": oldest_age,
        "warnings": warnings,
    }
