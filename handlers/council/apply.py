"""From verified proofs to a member's tier, the same on every node.

`tier_from_proofs` is a pure function of one admission and the decided proofs bound to
it, so nodes holding the same proofs hold the same tier whatever order the proofs came
in; `settle` moves the `member_tier` machine there along its own rules, and a ban's
effects follow (ban list, HiveMap state dropped and a ban broadcast, the bridge's release
through its observer of the machine, CLBoss tags)."""
from __future__ import annotations

import structlog

from handlers.bridge import clboss
from handlers.council.records import admission_ref
from handlers.hivemap import gossip
from handlers.intents import locks as intents
from handlers.membership import members as ms
from storage import council as store
from storage import hive as hive_store
from storage import hivemap

log = structlog.get_logger("hive.council")

KIND = "member_tier"


def tier_from_proofs(base: str, *, promoted: bool, left: bool, banned: bool,
                     unbanned: bool) -> str:
    """A ban outranks a leave (a node cannot leave to escape one); an unban ends in
    `left` (coming back needs a new admission); a promotion only lifts a neophyte."""
    if banned:
        return "left" if unbanned else "banned"
    if left:
        return "left"
    return "member" if promoted and base == "neophyte" else base


# current tier -> desired tier -> the machine's triggers, in order
PATHS = {
    ("neophyte", "member"): ("promote",),
    ("neophyte", "banned"): ("ban",),
    ("member", "banned"): ("ban",),
    ("left", "banned"): ("ban",),
    ("neophyte", "left"): ("leave",),
    ("member", "left"): ("leave",),
    ("banned", "left"): ("unban",),
}


def proofs_of(conn, peer_id: str, admission: dict) -> dict:
    """The decided proposals and the leave bound to this admission of `peer_id`."""
    ref = admission_ref(admission)

    def decided(kind, subject):
        return [p for p in store.proposals_for(conn, peer_id, kind)
                if p["decided_at"] is not None and p["subject"] == subject]
    promotions = decided("promote", ref)
    bans = decided("ban", ref)
    unbans = [u for b in bans for u in decided("unban", b["proposal_id"])]
    return {"promote": promotions[:1], "ban": bans[-1:], "unban": unbans[:1],
            "leave": store.leave_of(conn, peer_id, ref)}


def desired_tier(conn, peer_id: str) -> str | None:
    row = hive_store.member(conn, peer_id)
    if row is None:
        return None
    p = proofs_of(conn, peer_id, row["admission"])
    return tier_from_proofs(row["admission"]["tier"], promoted=bool(p["promote"]),
                            left=p["leave"] is not None, banned=bool(p["ban"]),
                            unbanned=bool(p["unban"]))


def settle(ctx, peer_id: str) -> str | None:
    """Move `peer_id`'s tier to what its proofs say; the tier it ends in."""
    conn = ctx.db.conn()
    row = hive_store.member(conn, peer_id)
    if row is None:
        return None
    proofs = proofs_of(conn, peer_id, row["admission"])
    want = desired_tier(conn, peer_id)
    current = row["tier"]
    for trigger in PATHS.get((current, want), ()):
        proof = None if trigger == "leave" else (proofs[trigger] or [None])[0]
        counts = {} if proof is None else {"votes": proof["votes"],
                                           "eligible": proof["eligible"]}
        outcome = ctx.dispatcher.fire(
            KIND, peer_id, trigger, **counts,
            context={"proof": None if proof is None else proof["proposal_id"]})
        if not outcome.ok:
            return current
        current = outcome.dest
        _effects(ctx, peer_id, trigger, proof)
    return current


def _effects(ctx, peer_id: str, trigger: str, proof: dict | None) -> None:
    if trigger == "ban":
        with ctx.db.transaction() as conn:
            hive_store.add_ban(conn, peer_id=peer_id, reason=proof["record"]["reason"],
                               now=ctx.clock.now())
            # Its HiveMap state goes now, not at the next tick's pruning.
            hivemap.forget_except(conn, {m["peer_id"] for m in ms.active_members(conn)})
        gossip.status_event(ctx)
        intents.on_initiator_banned(ctx, peer_id)
        if ctx.bridge is not None:
            clboss.release(ctx, peer_id)
        log.info("council.banned", target=peer_id, proposal_id=proof["proposal_id"],
                 votes=proof["votes"], eligible=proof["eligible"])
    elif trigger == "unban":
        with ctx.db.transaction() as conn:
            hive_store.remove_ban(conn, peer_id)
        gossip.status_event(ctx)
        log.info("council.unbanned", target=peer_id, proposal_id=proof["proposal_id"])
    elif trigger == "promote":
        log.info("council.promoted", target=peer_id, proposal_id=proof["proposal_id"],
                 votes=proof["votes"], eligible=proof["eligible"])
    else:
        log.info("council.left", member=peer_id)
