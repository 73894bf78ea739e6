"""The HiveMap's messages: GOSSIP (a member's own signed state), STATE_HASH (the fleet
hash, for anti-entropy) and FULL_SYNC (every entry we hold, in chunks).

Anti-entropy is stateless: every STATE_HASH is answered on its own merits (a FULL_SYNC and
our own hash when the hashes differ), so there is no per-peer lifecycle to persist; the
exchange ends when both hashes match. A FULL_SYNC that taught us something makes us offer
our new hash to our other connected members, so news crosses the fleet. An entry is only ever taken if it is its member's
own signature over a newer version, so a sync can neither forge nor roll back a state,
and it never adds, removes or re-tiers a member.
"""
from __future__ import annotations

import structlog

from handlers import membership as ms
from handlers import messages, signing
from handlers.authorize import connected_members, from_member
from handlers.hivemap_rules import chunk, fleet_hash, should_broadcast, summarize
from handlers.wire import MsgType, encode
from storage import hive as hive_store
from storage import hivemap, outbox

log = structlog.get_logger("hive.gossip")

FUTURE_SKEW = 600            # seconds a member's clock may run ahead of ours
MAX_LIVE_AGE = 3600          # a GOSSIP older than this is stale (a FULL_SYNC may be older)
MAX_VERSION_JUMP = 100_000   # a version this far past the one we hold is refused


def _refuse(peer_id, msg, reason, **extra):
    log.info("gossip.refused", peer_id=peer_id, msg=msg, reason=reason, **extra)


def _active_ids(conn) -> set[str]:
    return {m["peer_id"] for m in ms.active_members(conn)}


def _queue(ctx, peers, msg_hex) -> None:
    with ctx.db.transaction() as conn:
        for peer in peers:
            outbox.add(conn, peer_id=peer, msg_hex=msg_hex, now=ctx.clock.now())


def _our_hash_message(ctx) -> str:
    entries = [e["state"] for e in hivemap.all_entries(ctx.db.conn())]
    return encode(MsgType.STATE_HASH, {"hash": fleet_hash(entries), "count": len(entries)})


# -- our own state: the scheduler's tick --------------------------------------------------
def on_tick(ctx) -> None:
    conn = ctx.db.conn()
    meta = hive_store.get_meta(conn)
    if meta is None:
        return
    members = _active_ids(conn)
    if ctx.node_id not in members:
        return
    with ctx.db.transaction() as c:
        if hivemap.forget_except(c, members):       # states of banned or departed members
            log.info("gossip.pruned")
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
        connected = connected_members(ctx, members)
        _broadcast(ctx, meta["hive_id"], summary, last, reason, connected)
    if now - ctx.timers.get("last_sync", 0.0) >= ctx.config().sync_interval:
        ctx.timers["last_sync"] = now
        connected = connected if connected is not None else connected_members(ctx, members)
        _queue(ctx, connected, _our_hash_message(ctx))


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


def status_event(ctx) -> None:
    """A ban or unban happened: broadcast our state at the next tick."""
    ctx.timers["status_event"] = True


# -- entries from peers -----------------------------------------------------------------
def accept_entry(ctx, entry: dict, *, live: bool, members: set[str], hive_id: str) -> str | None:
    """Store a signed state if it passes every check; otherwise the reason it did not."""
    state, sig = entry["state"], entry["sig"]
    peer = state["peer_id"]
    if peer not in members:
        return "not a member"
    now = ctx.now()
    if state["timestamp"] > now + FUTURE_SKEW:
        return "timestamp in the future"
    if live and state["timestamp"] < now - MAX_LIVE_AGE:
        return "timestamp too old"
    stored = hivemap.get(ctx.db.conn(), peer)
    if stored is not None:
        held = stored["state"]
        if (state["version"], state["timestamp"], sig) <= \
                (held["version"], held["timestamp"], stored["sig"]):
            return "not newer than the version held"
        if state["version"] > held["version"] + MAX_VERSION_JUMP:
            return "version too far ahead"
        if state["timestamp"] < held["timestamp"]:
            return "timestamp went back"
    if not signing.verify(ctx.lightning, peer, hive_id, "STATE", state, sig):
        return "not signed by the member it describes"
    # Our own state signed by us but newer than ours (we lost our database): taking it
    # lets our next broadcast continue above it instead of being refused by everyone.
    with ctx.db.transaction() as conn:
        if not hivemap.put_if_newer(conn, state, sig, ctx.clock.now()):
            return "not newer than the version held"
    return None


def on_gossip(ctx, peer_id: str, body: dict) -> None:
    ok = from_member(ctx, peer_id, body, messages.GOSSIP,
                     lambda why: _refuse(peer_id, "GOSSIP", why))
    if ok is None:
        return
    meta, members, entry = ok
    reason = accept_entry(ctx, entry, live=True, members=members, hive_id=meta["hive_id"])
    if reason:
        return _refuse(peer_id, "GOSSIP", reason, about=entry["state"]["peer_id"],
                       version=entry["state"]["version"])
    log.info("gossip.accepted", peer_id=peer_id, about=entry["state"]["peer_id"],
             version=entry["state"]["version"])


def on_state_hash(ctx, peer_id: str, body: dict) -> None:
    if not ctx.sync_limiter.allow(peer_id):
        return _refuse(peer_id, "STATE_HASH", "rate limited")
    ok = from_member(ctx, peer_id, body, messages.STATE_HASH,
                     lambda why: _refuse(peer_id, "STATE_HASH", why))
    if ok is None:
        return
    theirs = ok[2]
    entries = hivemap.all_entries(ctx.db.conn())
    ours = fleet_hash(e["state"] for e in entries)
    if theirs["hash"] == ours:
        log.debug("sync.in_sync", peer_id=peer_id)
        return
    # Views that cannot merge (a member list that differs) would otherwise be answered
    # forever: the same pair of hashes is answered once per sync interval.
    answered = ctx.timers.setdefault("answered", {})
    pair, now = (ours, theirs["hash"]), ctx.clock.now()
    last = answered.get(peer_id)
    if last is not None and last[0] == pair and now - last[1] < ctx.config().sync_interval:
        return _refuse(peer_id, "STATE_HASH", "already answered these hashes")
    answered[peer_id] = (pair, now)
    if len(answered) > 1000:
        answered.clear()
    chunks = chunk(entries, lambda group, i, n: encode(
        MsgType.FULL_SYNC, {"entries": group, "chunk": i, "chunks": n}))
    with ctx.db.transaction() as conn:
        for msg in chunks + [_our_hash_message(ctx)]:
            outbox.add(conn, peer_id=peer_id, msg_hex=msg, now=ctx.clock.now())
    log.info("sync.diverged", peer_id=peer_id, ours=ours, theirs=theirs["hash"],
             entries=len(entries), chunks=len(chunks))


def on_full_sync(ctx, peer_id: str, body: dict) -> None:
    if not ctx.full_sync_limiter.allow(peer_id):
        return _refuse(peer_id, "FULL_SYNC", "rate limited")
    ok = from_member(ctx, peer_id, body, messages.FULL_SYNC,
                     lambda why: _refuse(peer_id, "FULL_SYNC", why))
    if ok is None:
        return
    meta, members, sync = ok
    # Only members' entries, and none for a member listed twice (an honest sender lists
    # each once): the work of a message is bounded by the size of the hive.
    seen: dict[str, int] = {}
    for entry in sync["entries"]:
        seen[entry["state"]["peer_id"]] = seen.get(entry["state"]["peer_id"], 0) + 1
    usable = [e for e in sync["entries"]
              if e["state"]["peer_id"] in members and seen[e["state"]["peer_id"]] == 1]
    taken, refused = 0, {}
    if len(usable) < len(sync["entries"]):
        refused["not a member, or listed twice"] = len(sync["entries"]) - len(usable)
    for entry in usable:
        reason = accept_entry(ctx, entry, live=False, members=members, hive_id=meta["hive_id"])
        if reason is None:
            taken += 1
        else:
            refused[reason] = refused.get(reason, 0) + 1
    log.info("sync.merged", peer_id=peer_id, chunk=sync["chunk"], chunks=sync["chunks"],
             taken=taken, refused=refused)
    if taken:
        # What we just learned may be news to our other peers: offer them our hash, so a
        # healed partition converges across members that are not directly connected.
        others = [p for p in connected_members(ctx, members) if p != peer_id]
        _queue(ctx, others, _our_hash_message(ctx))


def on_member_connected(ctx, peer_id: str) -> None:
    """Anti-entropy on (re)connection: tell a member our fleet hash."""
    conn = ctx.db.conn()
    if hive_store.get_meta(conn) is None or peer_id not in _active_ids(conn):
        return
    _queue(ctx, [peer_id], _our_hash_message(ctx))


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
