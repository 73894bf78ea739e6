"""The fleet's fee policy (the seed's "HIVE fee 0 ppm"): channels between members carry
zero fees, set on admission, checked again after a restart, and kept on every channel to
a member (a new one is zeroed at the next sweep). On leave or ban the member is handed
back: `strategy=passive` in cl-revenue-ops (never a delete), or, without it, the fees
setchannel replaced are restored and our CLBoss `lnfee` tag removed.

With cl-revenue-ops (the `hive` strategy below 3.0.0, `static` fee_ppm=0 from 3.0.0):
`revenue-policy list` first, then `set` for one peer or `batch` for several (batch skips
its 10-changes-a-minute limit). Without it: lightningd's `setchannel` to 0/0 for that
member, plus CLBoss' `lnfee` tag for the member when CLBoss is there (only once two
detections in a row found no cl-revenue-ops: at start it may not be active yet). While
cl-revenue-ops is detected but its breaker is not closed, nothing is changed: falling
back to setchannel would fight it when it comes back.

A sweep reads before it writes, so an earlier call that timed out is reconciled (is the
policy set? are the fees zero?) instead of repeated blindly. One sweep at a time; each
policy is a row in `bridge_fee_policies` (wanted, settled, the fees it replaced)."""
from __future__ import annotations

import structlog
from pyln.client import RpcError

from handlers.bridge import clboss
from handlers.bridge.companions import CLBOSS, REVENUE
from handlers.bridge.pool import CallOutcome
from handlers.membership.members import active_members
from storage import bridge as store
from storage import contribution as contribution_store

log = structlog.get_logger("hive.bridge")

MEMBER_KIND = "member_tier"
ACTIVE, GONE = ("neophyte", "member", "admin"), ("banned", "left")
BATCH_MAX = 100
CLOSED_STATES = ("ONCHAIN", "CLOSINGD_COMPLETE", "FUNDING_SPEND_SEEN", "AWAITING_UNILATERAL")


def install(bridge) -> None:
    bridge.after_tick.append(sweep)
    bridge.on_detected.append(on_detected)


# -- what asks for a policy ------------------------------------------------------------------
def on_member_outcome(ctx, outcome) -> None:
    """A dispatcher observer: a member admitted (or readmitted) gets the fleet policy; a
    member banned or gone is released. When we ourselves leave or are banned, every
    member we manage is released (we are no longer in the fleet whose fees are zero),
    and when we are readmitted, every active member is admitted again."""
    if outcome.kind != MEMBER_KIND:
        return
    came = outcome.dest in ACTIVE and outcome.source in GONE
    went = outcome.dest in GONE and outcome.source not in GONE
    if outcome.instance_id == ctx.node_id:
        if went:
            for row in store.fee_policies(ctx.db.conn()):
                release_member(ctx, row["peer_id"])
        elif came:
            for m in active_members(ctx.db.conn()):
                if m["peer_id"] != ctx.node_id:
                    admit_member(ctx, m["peer_id"])
        return
    if outcome.trigger == "create" or came:
        admit_member(ctx, outcome.instance_id)
    elif went:
        release_member(ctx, outcome.instance_id)


def admit_member(ctx, peer_id: str) -> None:
    """Into the zero-fee policy, unless the contribution ledger throttles the member
    (then it is admitted when the throttle lifts)."""
    with ctx.db.transaction() as conn:
        if peer_id in contribution_store.throttled_peers(conn):
            return
        store.want(conn, peer_id, "fleet", ctx.clock.now())
    sweep(ctx, now=True)


def release_member(ctx, peer_id: str) -> None:
    """Leave or ban: hand the member's channels back (passive, or our replaced fees).
    A peer whose fees we never managed is left alone (passive would replace whatever
    cl-revenue-ops does for it now)."""
    with ctx.db.transaction() as conn:
        if store.fee_policy(conn, peer_id) is None:
            return
        store.want(conn, peer_id, "released", ctx.clock.now())
    sweep(ctx, now=True)


def on_start(ctx) -> bool:
    """After a restart (the first sweep of a new bridge): every active member is wanted
    in the fleet policy, and every policy is checked again (a companion may have lost or
    changed it meanwhile). False when lightningd cannot tell us who we are yet."""
    try:
        me = ctx.node_id
    except (RpcError, OSError) as e:
        log.info("bridge.fee_policy_deferred", error=str(e))
        return False
    now = ctx.clock.now()
    with ctx.db.transaction() as conn:
        throttled = contribution_store.throttled_peers(conn)
        for m in active_members(conn):
            if m["peer_id"] != me and m["peer_id"] not in throttled:
                store.want(conn, m["peer_id"], "fleet", now)
        store.unsettle(conn, now)
    return True


def on_detected(ctx, name: str) -> None:
    """A companion appeared (or changed version): policies are set through it now."""
    if name == REVENUE:
        with ctx.db.transaction() as conn:
            store.unsettle(conn, ctx.clock.now())
    sweep(ctx, now=True)


# -- the sweep ---------------------------------------------------------------------------------
def sweep(ctx, now: bool = False) -> None:
    """Bring every member's policy to what is wanted. On the worker; the calls run on the
    pool. `now=False` (the tick) runs at most every hive-bridge-check-seconds."""
    b = ctx.bridge
    t = ctx.clock.now()
    cfg = ctx.config()
    state = b.state.setdefault("fee_sweep", {"running_since": None, "last": float("-inf"),
                                                "again": False, "restarted": False})
    if state["running_since"] is not None:
        # One at a time; a sweep whose every call has timed out is long over.
        if t - state["running_since"] < 4 * cfg.bridge_timeout_seconds + cfg.tick_seconds:
            state["again"] = state["again"] or now
            return
    if not now and t - state["last"] < cfg.bridge_check_seconds:
        return
    rev = b.companions[REVENUE]
    if b.companions[CLBOSS].reason == "not checked yet" or \
            (not rev.detected and rev.misses < 2):
        return      # not yet known whether cl-revenue-ops is there: the path is not known
    if not state["restarted"]:
        if not on_start(ctx):
            return
        state["restarted"] = True
    rows = store.fee_policies(ctx.db.conn())
    if rev.detected:
        rows = [r for r in rows if not r["settled"]]
        if not rows or b.available(ctx, REVENUE) is not None:
            return
        path = _revenue_path
    else:
        rows = [r for r in rows if r["wanted"] == "fleet" or not r["settled"]]
        if not rows:
            return
        path = _setchannel_path
    state["running_since"], state["last"], state["again"] = t, t, False

    def finished() -> None:
        state["running_since"] = None
        if state["again"]:
            sweep(ctx, now=True)
    path(ctx, rows, finished)


def _settle(ctx, row, via) -> None:
    with ctx.db.transaction() as conn:
        store.settle(conn, row["peer_id"], row["wanted"], via, ctx.clock.now())
    log.info("bridge.fee_policy_set", peer_id=row["peer_id"], wanted=row["wanted"], via=via)


def _failed(ctx, peer_ids, error) -> None:
    with ctx.db.transaction() as conn:
        for p in peer_ids:
            store.failed(conn, p, error, ctx.clock.now())
    log.info("bridge.fee_policy_failed", peers=list(peer_ids), error=error)


# -- through cl-revenue-ops -------------------------------------------------------------------
def _target(ctx, row) -> dict:
    caps = ctx.bridge.companions[REVENUE].capabilities
    return caps["fleet_fee"] if row["wanted"] == "fleet" else caps["release"]


def _matches(policy, target) -> bool:
    if not isinstance(policy, dict) or policy.get("strategy") != target["strategy"]:
        return False
    return "fee_ppm" not in target or policy.get("fee_ppm_target") == target["fee_ppm"]


def _via(target) -> str:
    return "cl-revenue-ops:" + target["strategy"] + (
        f":{target['fee_ppm']}" if "fee_ppm" in target else "")


def _succeeded(result) -> str | None:
    return None if isinstance(result, dict) and result.get("status") == "success" else \
        f"not a success: {str(result)[:120]}"


def _revenue_path(ctx, rows, finished) -> None:
    def listed(outcome: CallOutcome) -> None:
        if not outcome.ok:
            _failed(ctx, [r["peer_id"] for r in rows], f"revenue-policy list: {outcome.error}")
            return finished()
        policies = outcome.result.get("policies")
        by_peer = {p.get("peer_id"): p for p in policies if isinstance(p, dict)} \
            if isinstance(policies, list) else {}
        changes = []
        for row in rows:
            target = _target(ctx, row)
            if _matches(by_peer.get(row["peer_id"]), target):
                _settle(ctx, row, _via(target))     # already so (perhaps a timed-out set landed)
            else:
                changes.append((row, target))
        if len(changes) == 1:
            _set_one(ctx, *changes[0], finished)
        elif changes:
            _set_batches(ctx, changes, finished)
        else:
            finished()
    ctx.bridge.call(ctx, REVENUE, "revenue-policy", {"action": "list"}, listed)


def _set_one(ctx, row, target, finished) -> None:
    params = {"action": "set", "peer_id": row["peer_id"], "strategy": target["strategy"]}
    if "fee_ppm" in target:
        params["fee_ppm"] = target["fee_ppm"]

    def done(outcome: CallOutcome) -> None:
        if outcome.ok:
            _settle(ctx, row, _via(target))
        else:
            _failed(ctx, [row["peer_id"]], f"revenue-policy set: {outcome.error}")
        finished()
    ctx.bridge.call(ctx, REVENUE, "revenue-policy", params, done, check=_succeeded)


def _set_batches(ctx, changes, finished) -> None:
    chunk, rest = changes[:BATCH_MAX], changes[BATCH_MAX:]
    updates = [{"peer_id": row["peer_id"], "strategy": target["strategy"],
                **({"fee_ppm_target": target["fee_ppm"]} if "fee_ppm" in target else {})}
               for row, target in chunk]

    def done(outcome: CallOutcome) -> None:
        if outcome.ok:
            for row, target in chunk:
                _settle(ctx, row, _via(target))
        else:
            _failed(ctx, [row["peer_id"] for row, _ in chunk], f"revenue-policy batch: {outcome.error}")
        if rest and outcome.ok:
            _set_batches(ctx, rest, finished)
        else:
            finished()
    ctx.bridge.call(ctx, REVENUE, "revenue-policy", {"action": "batch", "updates": updates},
                    done, check=_succeeded)


# -- without cl-revenue-ops: lightningd's setchannel (and CLBoss' lnfee) ---------------------
def _fees_of(channel) -> tuple[int, int] | None:
    local = (channel.get("updates") or {}).get("local") or {}
    base, ppm = local.get("fee_base_msat"), local.get("fee_proportional_millionths")
    return (int(base), int(ppm)) if isinstance(base, int) and isinstance(ppm, int) else None


def _setchannel_path(ctx, rows, finished) -> None:
    def listed(outcome: CallOutcome) -> None:
        chans = outcome.result.get("channels") if outcome.ok and isinstance(outcome.result, dict) else None
        if not isinstance(chans, list):
            _failed(ctx, [r["peer_id"] for r in rows], f"listpeerchannels: {outcome.error}")
            return finished()
        by_peer: dict[str, list[dict]] = {}
        for c in chans:
            if isinstance(c, dict) and c.get("short_channel_id") and c.get("state") not in CLOSED_STATES:
                by_peer.setdefault(c.get("peer_id"), []).append(c)
        steps = []
        for row in rows:
            peer = row["peer_id"]
            if row["wanted"] == "fleet":
                replaced = {c["short_channel_id"]: list(_fees_of(c)) for c in by_peer.get(peer, [])
                            if _fees_of(c) not in (None, (0, 0))}
                if replaced:
                    with ctx.db.transaction() as conn:   # kept before we overwrite them
                        store.remember_replaced(conn, peer, replaced)
                    steps.append((row, {"id": peer, "feebase": 0, "feeppm": 0}))
                elif not row["settled"]:
                    _settle(ctx, row, "setchannel")
                # CLBoss may have come up after the policy was set: checked every sweep.
                if clboss.LNFEE not in store.our_tags(ctx.db.conn(), peer) and \
                        ctx.bridge.available(ctx, CLBOSS) is None:
                    clboss.add_tag(ctx, peer, clboss.LNFEE)
            else:
                for scid, (base, ppm) in sorted(row["replaced"].items()):
                    steps.append((row, {"id": scid, "feebase": base, "feeppm": ppm}))
                steps.append((row, None))           # then: forget, untag, settle
        _run_steps(ctx, steps, set(), finished)
    ctx.bridge.lightningd(ctx, "listpeerchannels", {}, listed)


def _run_steps(ctx, steps, failed_peers, finished) -> None:
    if not steps:
        return finished()
    (row, params), rest = steps[0], steps[1:]
    peer = row["peer_id"]
    if params is None:              # the end of a release
        if peer not in failed_peers:
            with ctx.db.transaction() as conn:
                store.forget_replaced(conn, peer)
            clboss.remove_tag(ctx, peer, clboss.LNFEE)
            _settle(ctx, row, "setchannel:restored")
        return _run_steps(ctx, rest, failed_peers, finished)

    def done(outcome: CallOutcome) -> None:
        ok = outcome.ok and isinstance(outcome.result, dict) and \
            isinstance(outcome.result.get("channels"), list)
        if ok and row["wanted"] == "fleet" and not row["settled"]:
            _settle(ctx, row, "setchannel")
        elif not ok:
            failed_peers.add(peer)
            _failed(ctx, [peer], f"setchannel: {outcome.error or str(outcome.result)[:120]}")
        _run_steps(ctx, rest, failed_peers, finished)
    ctx.bridge.lightningd(ctx, "setchannel", params, done)
