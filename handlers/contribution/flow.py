"""The tick's contribution step, on the worker: write the sums the ledger absorbed (one
transaction), re-evaluate each member's ratio and throttle, and prune buckets older than
the window.

What counts, per member M and day: a settled forward that came in on a channel with M
adds its outgoing amount to M's `forwarded` (M brought traffic the fleet carried on); one
that went out on a channel with M adds it to M's `received` (the fleet carried traffic to
M). A forward between two members counts for both; one between non-members for neither.
The ratio is forwarded / received over the window, undefined while received is below
hive-contribution-min-sat (a quiet member is never judged on no data). The throttle is
the `contribution_throttle` machine (machines/contribution_throttle.py)."""
from __future__ import annotations

import structlog
from pyln.client import RpcError

from handlers.bridge import fees
from handlers.contribution.ledger import Ledger, day_of
from handlers.frame.refusals import refusal_log
from handlers.membership.members import active_members
from storage import contribution as store

log = structlog.get_logger("hive.contribution")

# A forward naming a channel the map lacks reads it again, at most this often.
REREAD_SECONDS = 60
PRUNE_EVERY_SECONDS = 3600
KIND, TRIGGER = "contribution_throttle", "ratio_evaluated"


def on_tick(ctx, ledger: Ledger) -> None:
    members = _members(ctx)
    flush(ctx, ledger, members)
    if members:
        evaluate(ctx, members)
    prune(ctx)


def _members(ctx) -> set[str]:
    return {m["peer_id"] for m in active_members(ctx.db.conn())} - {ctx.node_id}


def first_day(ctx) -> int:
    """The oldest day inside the window (today included)."""
    return day_of(ctx.clock.now()) - ctx.config().contribution_window_days + 1


def flush(ctx, ledger: Ledger, members: set[str]) -> None:
    pending, dropped = ledger.take()
    if dropped:
        log.warning("contribution.events_dropped", dropped=dropped, capacity=ledger.capacity)
    if not pending or not members:
        return      # outside a hive nothing is counted (and lightningd is not asked)
    peers = _peers(ctx, ledger, {c for key in pending for c in key[:2]})
    buckets: dict[tuple[str, int], list[int]] = {}
    unknown = set()
    for (in_ch, out_ch, day), msat in pending.items():
        src, dst = peers.get(in_ch), peers.get(out_ch)
        if src is None or dst is None:
            unknown.add(in_ch if src is None else out_ch)
            continue
        if src in members:
            buckets.setdefault((src, day), [0, 0])[0] += msat
        if dst in members:
            buckets.setdefault((dst, day), [0, 0])[1] += msat
    for scid in sorted(unknown):
        refusal_log(log, "contribution.unknown_channel", None, channel=scid)
    if buckets:
        with ctx.db.transaction() as conn:
            store.add(conn, buckets)


def _peers(ctx, ledger: Ledger, scids: set[str]) -> dict[str, str]:
    now = ctx.clock.now()
    missing = scids - ledger.peers.keys()
    if ledger.channels_stale or (missing and now - ledger.last_read >= REREAD_SECONDS):
        ledger.channels_stale, ledger.last_read = False, now
        try:
            channels = ctx.lightning.call("listpeerchannels", {}).get("channels", [])
        except (RpcError, OSError) as e:
            ledger.channels_stale = True        # tried again at the next flush
            log.warning("contribution.channels_unread", error=str(e))
            return ledger.peers
        peers = {}
        for c in channels if isinstance(channels, list) else []:
            if not isinstance(c, dict) or not isinstance(c.get("peer_id"), str):
                continue
            for scid in (c.get("short_channel_id"), (c.get("alias") or {}).get("local")):
                if isinstance(scid, str):
                    peers[scid] = c["peer_id"]
        ledger.peers = peers
    return ledger.peers


# -- the ratio and the throttle ------------------------------------------------------------
def ratio(forwarded_msat: int, received_msat: int, cfg) -> float | None:
    if received_msat < cfg.contribution_min_sat * 1000:
        return None
    return forwarded_msat / received_msat


def evaluate(ctx, members: set[str]) -> None:
    """Fire each member's throttle machine with its ratio; its table decides (with
    hysteresis) whether that moves it. Asked first with `allows`, so a tick where nothing
    changes writes nothing."""
    cfg, now = ctx.config(), ctx.clock.now()
    totals = store.totals(ctx.db.conn(), first_day(ctx))
    for peer in sorted(members):
        if ctx.dispatcher.load(KIND, peer) is None:
            ctx.dispatcher.create(KIND, peer, data={"ratio": None})
        fwd, rcv = totals.get(peer, (0, 0))
        r = ratio(fwd, rcv, cfg)
        marks = {"ratio": r, "throttle_ratio": cfg.contribution_throttle_ratio,
                 "release_ratio": cfg.contribution_release_ratio}
        if not ctx.dispatcher.allows(KIND, peer, TRIGGER, now=now, **marks):
            continue
        outcome = ctx.dispatcher.fire(
            KIND, peer, TRIGGER, now=now, data_update={"ratio": r}, **marks,
            context={"ratio": r, "forwarded_msat": fwd, "received_msat": rcv})
        if not outcome.ok:
            continue
        throttled = outcome.dest == "throttled"
        log.info("contribution.throttled" if throttled else "contribution.released",
                 peer_id=peer, ratio=r, forwarded_msat=fwd, received_msat=rcv,
                 window_days=cfg.contribution_window_days)
        if ctx.bridge is None:
            continue
        # The bridge's own paths: out of the zero-fee policy, and back into it.
        if throttled:
            fees.release_member(ctx, peer)
        else:
            fees.admit_member(ctx, peer)


def prune(ctx) -> None:
    if not ctx.every("contribution_pruned", PRUNE_EVERY_SECONDS):
        return
    with ctx.db.transaction() as conn:
        gone = store.prune(conn, first_day(ctx))
    if gone:
        log.info("contribution.pruned", buckets=gone)
