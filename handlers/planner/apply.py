"""What a member does with a plan: store the saturation verdicts and bring its own CLBoss
in line (the `open` tag on every saturated target; on release, only the tag cl-hive added
comes off, through the gateway, and not while the operator's clboss_ignore wants it), and, when it is the assignee, propose the planned open
as a pending action. Tags CLBoss could not take now are retried at the next cycle."""
from __future__ import annotations

import structlog
from pyln.client import RpcException

from handlers.bridge import clboss
from handlers.bridge.companions import CLBOSS
from handlers.governance import actions as governance
from storage import governance as governance_store
from storage import planner as store

log = structlog.get_logger("hive.planner")

UNFINISHED = ("proposed", "awaiting_approval", "consulting_oracle", "approved", "executing")


def saturation(ctx, plan: dict, previously: set[str]) -> None:
    now = ctx.clock.now()
    with ctx.db.transaction() as conn:
        for t in plan["targets"]:
            if t["saturated"]:
                store.hold(conn, t["peer_id"], t["share_pct"], now)
            elif t["peer_id"] in previously:
                store.release(conn, t["peer_id"], t["share_pct"])
    for t in plan["targets"]:
        if t["change"]:
            log.info("planner." + t["change"], target=t["peer_id"], share_pct=t["share_pct"])
    sync_tags(ctx, plan)


def sync_tags(ctx, plan: dict) -> None:
    rows = store.saturation_rows(ctx.db.conn())
    why = "no bridge" if ctx.bridge is None else ctx.bridge.available(ctx, CLBOSS)
    if why is not None:
        if any(r["released"] or not r["tagged"] for r in rows.values()):
            plan["notes"].append(f"CLBoss tags wait for the next cycle: {why}")
        return
    for target, row in rows.items():
        if row["released"]:
            # An operator's clboss_ignore on the same target wants the tag for good.
            kept = governance_store.executed_on(ctx.db.conn(), "clboss_ignore", target)
            if row["tagged"] and not kept:
                clboss.remove_tag(ctx, target, clboss.OPEN, _untagged(ctx, target))
            else:
                if kept:
                    log.info("planner.tag_kept", target=target,
                             reason="an executed clboss_ignore action wants it")
                with ctx.db.transaction() as conn:
                    store.forget(conn, target)
        elif not row["tagged"]:
            clboss.ignore(ctx, target, _tagged(ctx, target))


def _tagged(ctx, target):
    def done(why) -> None:
        if why is not None:
            return log.info("planner.tag_failed", target=target, error=why)
        with ctx.db.transaction() as conn:
            store.mark_tagged(conn, target, True)
    return done


def _untagged(ctx, target):
    def done(why) -> None:
        if why is not None:
            return log.info("planner.untag_failed", target=target, error=why)
        with ctx.db.transaction() as conn:
            store.forget(conn, target)
    return done


def propose(ctx, proposal: dict) -> None:
    """We are the assignee: propose the open unless a gate holds it or our previous
    planned open is still under way (at most one at a time per member)."""
    if proposal["held"]:
        proposal["not_proposed"] = proposal["held"]
        return
    running = store.planner_opens(ctx.db.conn(), UNFINISHED)
    if running:
        proposal["not_proposed"] = (f"our planned open {running[0]['action_id']} is still "
                                    f"{running[0]['state']}")
        return
    try:
        act = governance.propose(
            ctx, "channel_open", proposal["target"], proposal["amount_sat"],
            reason="hive planner: the best candidate the fleet has no channel to; this "
                   "member has the most idle on-chain funds", origin="planner")
    except RpcException as e:
        proposal["not_proposed"] = e.message
        return
    proposal["action_id"] = act["id"]
