"""The HiveMap's own state and GOSSIP: each member broadcasts its signed state, and takes
a peer's only if it is that member's own signature over a newer version. The anti-entropy
messages (STATE_HASH, DIGEST, FULL_SYNC) are in `sync.py`; what they share is here (the
fleet hash, the entry checks, the pairs of hashes answered).
"""
from __future__ import annotations

import structlog

from handlers.frame import logs
from handlers.frame.refusals import refusal_log
from handlers.hivemap.rules import (SETTLE_SECONDS, Recent, fleet_hash, fleet_hash_of_rows,
                                    should_broadcast, summarize)
from handlers.membership import members as ms
from handlers.wire import signing
from handlers.wire.framing import MsgType, encode
from storage import hive as hive_store
from storage import changes, hivemap, outbox

log_name = "hive.gossip"
log = structlog.get_logger(log_name)

FUTURE_SKEW = 600            # seconds a member's clock may run ahead of ours
MAX_LIVE_AGE = 3600          # a GOSSIP older than this is stale (a FULL_SYNC may be older)
MAX_VERSION_JUMP = 100_000   # a version this far past the one we hold is refused
MAX_REMEMBERED = 1024        # (kind, peer) pairs of hashes remembered as answered (LRU)
SYNC_FANOUT = 3              # members sent our STATE_HASH each sync interval
_CANONICAL = object()        # an entry's key for its encoded state: no JSON key can match


def refuse(peer_id, msg, reason, **extra):
    refusal_log(log, "gossip.refused", peer_id, msg=msg, reason=reason, **extra)


def queue_to(ctx, peers, *msgs) -> None:
    with ctx.db.transaction() as conn:
        for peer in peers:
            for msg_hex in msgs:
                outbox.add(conn, peer_id=peer, msg_hex=msg_hex, now=ctx.clock.now())


def compared_rows(ctx, before: int | None) -> list[tuple[str, int, int]]:
    """The digest rows a STATE_HASH with `settled` = `before` covers (every state held if
    None); shared with a cache: not to be changed."""
    conn = ctx.db.conn()
    return hivemap.digest_rows(conn) if before is None else hivemap.settled_rows(conn, before)


def our_hash(ctx, before: int | None = None) -> tuple[str, int]:
    """Our fleet hash and how many states it covers (of the newest states made by `before`,
    if given), from the digests alone: no state is parsed. The hash of every state held is
    computed again only when a state changed; a settled one moves with `before`, so it is
    computed each time (a pass over rows already cached)."""
    def compute():
        rows = compared_rows(ctx, before)
        return fleet_hash_of_rows(rows), len(rows)
    if before is not None:
        return compute()
    return changes.cached(ctx.db.conn(), "hivemap", "fleet_hash", compute)


def our_hash_message(ctx) -> str:
    """Our STATE_HASH: the hash of each member's newest state made SETTLE_SECONDS ago or
    earlier, with that time, so the receiver hashes the same of its own view. A heartbeat
    made since is most likely still on its way as GOSSIP: in a large fleet one always is,
    and a hash over every state held would make most exchanges differ for nothing."""
    before = ctx.now() - SETTLE_SECONDS
    ours, count = our_hash(ctx, before)
    return encode(MsgType.STATE_HASH, {"hash": ours, "count": count, "settled": before})


def first_time(ctx, kind: str, peer_id: str, pair: tuple) -> bool:
    """Whether this pair of hashes (ours, theirs) was not handled yet for `kind` with this
    peer within a sync interval: views that cannot merge (a member list that differs)
    would otherwise make two nodes answer each other forever. Records it."""
    table = ctx.timers.get("answered")
    if table is None:
        table = ctx.timers["answered"] = Recent(MAX_REMEMBERED)
    now = ctx.clock.now()
    last = table.get((kind, peer_id))
    if last is not None and last[0] == pair and now - last[1] < ctx.config().sync_interval:
        return False
    table.put((kind, peer_id), (pair, now))
    return True


# -- our own state: the scheduler's tick --------------------------------------------------
def on_tick(ctx) -> None:
    conn = ctx.db.conn()
    meta = hive_store.get_meta(conn)
    if meta is None:
        return
    members = ms.active_id_set(conn)        # read only here: the cached set, not a copy
    if ctx.node_id not in members:
        return
    _prune(ctx, members)
    now = ctx.clock.now()
    connected = None
    # listpeerchannels and listfunds are costly on a big node: read them when a channel
    # notification said something changed, when a status event asks for a broadcast,
    # or once per sync interval (or heartbeat, if shorter), not on every tick.
    every = min(ctx.config().sync_interval, ctx.config().heartbeat_interval)
    asked = ctx.timers.pop("status_event", False)
    if ctx.timers.pop("channels_changed", False) or asked or \
            now - ctx.timers.get("last_read", float("-inf")) >= every:
        ctx.timers["last_read"] = now
        summary = summarize(ctx.node_id,
                            ctx.lightning.call("listpeerchannels", {}).get("channels", []),
                            ctx.lightning.call("listfunds", {}).get("outputs", []), members)
        last = hivemap.get(conn, ctx.node_id)
        reason = should_broadcast(last and last["state"], summary, now, ctx.config(),
                                  status_event=asked)
    else:
        reason = None
    if reason:
        connected = ms.connected_members(ctx, members)
        _broadcast(ctx, meta["hive_id"], summary, last, reason, connected)
    fresh = ctx.timers.pop("hash_to", None)
    if fresh:
        connected = connected if connected is not None else ms.connected_members(ctx, members)
        to = [p for p in connected if p in fresh]
        # Our state as we hold it (not a new version) goes with the hash: a hash exchange
        # leaves out states younger than the settling time and takes one exchange at a
        # time, so a newcomer would otherwise wait for the periodic sync to learn ours.
        ours = hivemap.get(ctx.db.conn(), ctx.node_id)
        first = [encode(MsgType.GOSSIP, ours)] if ours is not None else []
        queue_to(ctx, to, *first, our_hash_message(ctx))
        log.info("sync.new_member_hash", to=len(to), new_members=len(fresh))
    if now - ctx.timers.get("last_sync", 0.0) >= ctx.config().sync_interval:
        ctx.timers["last_sync"] = now
        connected = connected if connected is not None else ms.connected_members(ctx, members)
        queue_to(ctx, sync_partners(ctx, connected), our_hash_message(ctx))


def _prune(ctx, members) -> None:
    """Drop the states of banned or departed members, once per change of the membership:
    a state is only ever taken from a member, so until the membership changes there is
    nothing new to drop (a DELETE over every member's id on every tick cost 1.5 ms at
    1,000 members)."""
    seen = changes.version(ctx.db.conn(), "membership")   # None: unknown, prune anyway
    if seen is not None and ctx.timers.get("pruned_at_membership") == seen:
        return
    with ctx.db.transaction() as c:
        dropped = hivemap.forget_except(c, members)
    if dropped:
        log.info("gossip.pruned", states=dropped)
    ctx.timers["pruned_at_membership"] = seen


def sync_partners(ctx, connected: list[str]) -> list[str]:
    """The SYNC_FANOUT connected members our periodic STATE_HASH goes to this interval, in
    turn (from a place set by our id, so members do not all pick the same ones). Every
    exchange levels both sides, so a few per interval carry a change across the fleet in
    a few intervals while the cost per member stays the same at any size; GOSSIP is what
    carries changes at once."""
    if len(connected) <= SYNC_FANOUT:
        return list(connected)
    turn = ctx.timers.get("sync_turn", int(ctx.node_id[2:10], 16))
    ctx.timers["sync_turn"] = turn + SYNC_FANOUT
    return [connected[(turn + i) % len(connected)] for i in range(SYNC_FANOUT)]


def _broadcast(ctx, hive_id, summary, last, reason, connected) -> None:
    prev = last["state"] if last else {"version": 0, "timestamp": 0}
    state = {**summary, "version": prev["version"] + 1,
             "timestamp": max(ctx.now(), prev["timestamp"])}
    sig = signing.sign(ctx.lightning, hive_id, "STATE", state)
    msg = encode(MsgType.GOSSIP, {"state": state, "sig": sig})
    with ctx.db.transaction() as conn:
        if not hivemap.put_if_newer(conn, state, sig, ctx.clock.now()):
            raise RuntimeError("our own state version went back")
        for peer in connected:
            outbox.add(conn, peer_id=peer, msg_hex=msg, now=ctx.clock.now())
    log.info("gossip.broadcast", reason=reason, version=state["version"],
             capacity_sat=state["capacity_sat"], to=len(connected))


def channels_changed(ctx) -> None:
    """A channel opened or changed state: read our channels at the next tick."""
    ctx.timers["channels_changed"] = True


def on_member_outcome(ctx, outcome) -> None:
    """A dispatcher observer, so that a join shows in every member's hive-topology within
    seconds, not at the next heartbeat or sync interval. We ourselves admitted: broadcast
    our state at the next tick. Another member new to us (admitted, or back): send it our
    fleet hash at the next tick; the DIGEST/FULL_SYNC exchange then moves what either
    lacks, both ways. Each end does this when it learns of the other; the one that learns
    last is already known to the other, so its hash is answered."""
    if outcome.kind != "member_tier":
        return
    if not (outcome.trigger == "create" or (outcome.dest in ms.ACTIVE_TIERS
                                            and outcome.source not in ms.ACTIVE_TIERS)):
        return
    if outcome.instance_id == ctx.node_id:
        status_event(ctx)
    else:
        ctx.timers.setdefault("hash_to", set()).add(outcome.instance_id)


def status_event(ctx) -> None:
    """A ban or unban happened: broadcast our state at the next tick."""
    ctx.timers["status_event"] = True


# -- entries from peers -----------------------------------------------------------------
def _before_signature(ctx, state: dict, sig: str, *, live: bool, members) -> str | None:
    """Every check of an entry that comes before its signature's, cheapest first; the
    reason it fails, or None. An entry not newer than the one held is never verified."""
    peer = state["peer_id"]
    if peer not in members:
        return "not a member"
    now = ctx.now()
    if state["timestamp"] > now + FUTURE_SKEW:
        return "timestamp in the future"
    if live and state["timestamp"] < now - MAX_LIVE_AGE:
        return "timestamp too old"
    held = hivemap.held(ctx.db.conn(), peer)       # (version, timestamp, sig) or None
    if held is not None:
        if (state["version"], state["timestamp"], sig) <= held:
            return "not newer than the version held"
        # Our own record is always taken back (our database was restored from a backup,
        # or a peer replays our newer state): otherwise we could never publish again.
        if state["version"] > held[0] + MAX_VERSION_JUMP and peer != ctx.node_id:
            return "version too far ahead"
        if state["timestamp"] < held[1]:
            return "timestamp went back"
    return None


def accept_entry(ctx, entry: dict, *, live: bool, members: set[str], hive_id: str) -> str | None:
    """Store a signed state if it passes every check; otherwise the reason it did not."""
    state, sig = entry["state"], entry["sig"]
    peer = state["peer_id"]
    reason = _before_signature(ctx, state, sig, live=live, members=members)
    if reason:
        return reason
    text = _canonical(entry)                   # encoded once: checked, then stored
    if not signing.verify(ctx.lightning, peer, hive_id, "STATE", state, sig, canonical=text):
        return "not signed by the member it describes"
    # Our own state signed by us but newer than ours (we lost our database): taking it
    # lets our next broadcast continue above it instead of being refused by everyone.
    # One statement: inside the worker's batch it needs no savepoint of its own, and
    # outside one it commits on its own (autocommit), with no BEGIN and COMMIT around it.
    stored = hivemap.put_if_newer(ctx.db.conn(), state, sig, ctx.clock.now(), text)
    return None if stored else "not newer than the version held"


def prefetch_gossip(ctx, peer_id: str, entry: dict, auth) -> None:
    """Ahead of `on_gossip`, as the worker prepares the message's batch (before the
    batch is applied), reading only: ask lightningd the signature check that `on_gossip`
    will make, if its cheaper checks pass (now; `on_gossip` makes them again)."""
    state = entry["state"]
    if _before_signature(ctx, state, entry["sig"], live=True, members=auth.members) is None:
        signing.prefetch(ctx.lightning, state["peer_id"], auth.meta["hive_id"], "STATE",
                         state, entry["sig"], canonical=_canonical(entry))


def _canonical(entry: dict) -> str:
    """The entry's state as canonical JSON, encoded once for the check asked ahead, the
    check and the write: kept in the entry (a parsed message, ours alone) with the very
    state object it encodes."""
    kept = entry.get(_CANONICAL)
    if kept is not None and kept[0] is entry["state"]:
        return kept[1]
    text = signing.canonical_json(entry["state"])
    entry[_CANONICAL] = (entry["state"], text)
    return text


def on_gossip(ctx, peer_id: str, entry: dict, auth) -> None:
    meta, members = auth.meta, auth.members
    reason = accept_entry(ctx, entry, live=True, members=members, hive_id=meta["hive_id"])
    if reason:
        return refuse(peer_id, "GOSSIP", reason, about=entry["state"]["peer_id"],
                       version=entry["state"]["version"])
    # Debug, not info: routine traffic (every member, every heartbeat), a line per member
    # per interval at info would grow with the fleet. Logged once committed: the worker
    # may apply a burst of messages in one transaction.
    if logs.debug_enabled(log_name):
        ctx.db.after_commit(lambda: log.debug("gossip.accepted", peer_id=peer_id,
                                              about=entry["state"]["peer_id"],
                                              version=entry["state"]["version"]))


def on_member_connected(ctx, peer_id: str) -> None:
    """Anti-entropy on (re)connection. Our own state, if we made it less than SETTLE_SECONDS
    ago: we broadcast it to the members connected then, which this one may not have been,
    and a hash exchange leaves it out until it settles (after a healed partition, every
    heartbeat of the cut's last seconds would otherwise wait for the periodic syncs to
    cross). And our fleet hash, to the first member to connect within a sync interval:
    connections come in bursts (a restart, a healed partition), and one exchange brings
    both sides level with each other, so syncing with every member that came back would
    carry the same differing states once per member; the others are compared at the
    periodic STATE_HASH (within one sync interval)."""
    conn = ctx.db.conn()
    # The cached member set, not a copy: a healed cut brings one notification per member
    # that came back (hundreds at once in a large fleet).
    if peer_id not in ms.active_id_set(conn) or hive_store.get_meta(conn) is None:
        return
    held = hivemap.held(conn, ctx.node_id)
    young = held is not None and held[1] > ctx.now() - SETTLE_SECONDS
    msgs = [encode(MsgType.GOSSIP, hivemap.get(conn, ctx.node_id))] if young else []
    if ctx.every("reconnect_hash", ctx.config().sync_interval):
        msgs.append(our_hash_message(ctx))
    else:
        log.debug("sync.reconnect_deferred", peer_id=peer_id)
    if msgs:
        queue_to(ctx, [peer_id], *msgs)


# -- hive-topology ------------------------------------------------------------------------
def topology_view(ctx) -> dict:
    conn = ctx.db.conn()
    tiers = {m["peer_id"]: m["tier"] for m in hive_store.members(conn)}
    entries = [e["state"] for e in hivemap.all_entries(conn)]
    now = ctx.now()
    targets: dict[str, dict] = {}
    for s in entries:
        for p in s["peers"]:
            t = targets.setdefault(p["peer_id"], {"peer_id": p["peer_id"],
                                                  "total_capacity_sat": 0, "members": []})
            t["total_capacity_sat"] += p["capacity_sat"]
            t["members"].append(s["peer_id"])
    return {
        "fleet_hash": fleet_hash(entries),
        "members": [{"peer_id": s["peer_id"], "tier": tiers.get(s["peer_id"]),
                     "version": s["version"], "age_seconds": max(0, now - s["timestamp"]),
                     "capacity_sat": s["capacity_sat"], "available_sat": s["available_sat"],
                     "fee_policy": s["fee_policy"], "external_peers": len(s["peers"])}
                    for s in entries],
        "targets": sorted(targets.values(),
                          key=lambda t: (-t["total_capacity_sat"], t["peer_id"])),
    }
