"""The HiveMap's anti-entropy: STATE_HASH (the fleet hash), DIGEST (bucketed: a summary,
then the members of the buckets that differ) and FULL_SYNC (entries, in chunks).

Stateless: every message is answered on its own merits, so there is no per-peer lifecycle
to persist. A differing STATE_HASH is answered with a summary of our view (a short hash
per bucket of members), a summary with the listing of the buckets that differ, a listing
with the entries its sender lacks or holds older (no more chunks than the receiver takes
at once: a FULL_SYNC budget per peer mirrors the receiver's) and, when the sender holds
something newer, our listing of the buckets concerned so that it sends those. So an
exchange costs about what differs, not a line per member. States younger than
SETTLE_SECONDS are left out of the comparison: they are most likely GOSSIP still on its
way. What a FULL_SYNC teaches us is not passed on at once (each member's periodic sync
picks it up), so a member that makes news at will cannot make the others multiply it.
"""
from __future__ import annotations

import hashlib

import structlog

from handlers.hivemap import buckets as bk
from handlers.hivemap.gossip import (accept_entry, compared_rows, first_time, our_hash,
                                     queue_to, refuse)
from handlers.hivemap.rules import SETTLE_SECONDS, chunk
from handlers.wire import messages
from handlers.wire.framing import MsgType, encode
from storage import hivemap

log = structlog.get_logger("hive.sync")


def _full_sync_budget(ctx, peer_id: str, wanted: int) -> int:
    """How many of `wanted` FULL_SYNC chunks to send `peer_id` now: its receiving bucket
    (ctx.full_sync_limiter: a burst, then one a second) would drop the rest, so we keep a
    bucket of the same shape for what we send it."""
    n = 0
    while n < wanted and ctx.full_sync_limiter.allow("to:" + peer_id):
        n += 1
    return n


def _listings(rows, of: int, buckets) -> list[str]:
    """DIGEST listings of `buckets`, whole buckets per message, at most MAX_DIGESTS rows
    each (one message for up to 1,000 members)."""
    rows = bk.listing(rows, of, buckets)
    by_bucket: dict[int, list] = {b: [] for b in buckets}
    for r in rows:
        by_bucket[bk.bucket_of(r[0], of)].append(r)
    out, cur_b, cur_r = [], [], []
    for b in sorted(by_bucket):
        if cur_r and len(cur_r) + len(by_bucket[b]) > messages.MAX_DIGESTS:
            out.append((cur_b, cur_r))
            cur_b, cur_r = [], []
        cur_b.append(b)
        cur_r += by_bucket[b][:messages.MAX_DIGESTS]
    out.append((cur_b, cur_r))
    return [encode(MsgType.DIGEST, {"of": of, "buckets": b, "digests": r}) for b, r in out]


def on_state_hash(ctx, peer_id: str, theirs: dict, auth) -> None:
    if not ctx.sync_limiter.allow(peer_id):
        return refuse(peer_id, "STATE_HASH", "rate limited")
    before = theirs["settled"]          # the states its hash covers; ours, the same
    ours, count = our_hash(ctx, before)
    if theirs["hash"] == ours:
        log.debug("sync.in_sync", peer_id=peer_id)
        return
    if not first_time(ctx, "hash_answered", peer_id, (ours, theirs["hash"])):
        return refuse(peer_id, "STATE_HASH", "already answered these hashes")
    # One exchange at a time: a burst of hashes (members reconnecting after a cut) would
    # each bring us the same entries. The exchange under way levels us with one of them;
    # the others are compared at their next periodic STATE_HASH.
    if not ctx.every("hash_exchange", SETTLE_SECONDS):
        return log.debug("sync.exchange_under_way", peer_id=peer_id)
    of = bk.buckets_for(max(count, theirs["count"]))
    if of == 1:             # a small view: its listing costs less than a summary round
        msgs = _listings(hivemap.digest_rows(ctx.db.conn()), 1, [0])
    else:
        salt = ours[:16]
        hashes = bk.bucket_hashes(compared_rows(ctx, before), of, salt)
        msgs = [encode(MsgType.DIGEST, {"of": of, "salt": salt, "settled": before,
                                        "hashes": hashes})]
    queue_to(ctx, [peer_id], *msgs)
    log.info("sync.diverged", peer_id=peer_id, ours=ours, theirs=theirs["hash"],
             entries=count, buckets=of)


def on_digest(ctx, peer_id: str, msg: dict, auth) -> None:
    # A DIGEST may cost FULL_SYNC chunks: its own bucket of the STATE_HASH shape.
    if not ctx.sync_limiter.allow("digest:" + peer_id):
        return refuse(peer_id, "DIGEST", "rate limited")
    of = msg["of"]
    if msg["hashes"] is not None:
        if msg["salt"] is None or len(msg["hashes"]) != bk.BUCKET_HASH * of:
            return refuse(peer_id, "DIGEST", "a summary needs a salt and one hash per bucket")
        return _on_summary(ctx, peer_id, msg)
    if msg["buckets"] is None or msg["digests"] is None:
        return refuse(peer_id, "DIGEST", "neither a summary nor a listing")
    covered = set(msg["buckets"])
    prefixes = [r[0] for r in msg["digests"]]
    if len(covered) != len(msg["buckets"]) or any(b >= of for b in covered):
        return refuse(peer_id, "DIGEST", "buckets listed twice or out of range")
    if len(set(prefixes)) != len(prefixes):
        return refuse(peer_id, "DIGEST", "a member listed twice")
    if any(bk.bucket_of(p, of) not in covered for p in prefixes):
        return refuse(peer_id, "DIGEST", "a member outside the buckets listed")
    _on_listing(ctx, peer_id, msg, auth.members)


def _on_summary(ctx, peer_id: str, msg: dict) -> None:
    ours, _ = our_hash(ctx)
    rows = hivemap.digest_rows(ctx.db.conn())
    # The buckets' hashes over the same states as the sender's (its `settled`, if given).
    differ = bk.differing_buckets(
        bk.bucket_hashes(compared_rows(ctx, msg["settled"]), msg["of"], msg["salt"]),
        msg["hashes"])
    if not differ:
        log.debug("sync.in_sync", peer_id=peer_id)
        return
    pair = (ours, hashlib.sha256((msg["salt"] + msg["hashes"]).encode()).hexdigest())
    if not first_time(ctx, "summary_answered", peer_id, pair):
        return refuse(peer_id, "DIGEST", "already answered these hashes")
    queue_to(ctx, [peer_id], *_listings(rows, msg["of"], differ))
    _asking(ctx, msg["of"], differ, only_new=False)   # the listing also asks for them
    log.info("sync.summary", peer_id=peer_id, buckets=msg["of"], differing=len(differ))


def _asking(ctx, of: int, buckets, only_new: bool = True) -> list[int]:
    """Which of `buckets` (of `of`) to ask for what we lack in them, and that we do: those
    not asked of any member less than SETTLE_SECONDS ago (`only_new`; else all). After a
    healed cut each node exchanges with the member it sent its hash to and with one that
    sent it theirs: asking both for the same buckets would bring every missing entry
    twice. What is still missing is compared at the next exchange."""
    now = ctx.clock.now()
    asked = ctx.timers.setdefault("asked", {})
    for key in [k for k, t in asked.items() if now - t >= SETTLE_SECONDS]:
        del asked[key]
    out = [b for b in buckets if not only_new or (of, b) not in asked]
    for b in out:
        asked[(of, b)] = now
    return out


def _on_listing(ctx, peer_id: str, msg: dict, members) -> None:
    ours, _ = our_hash(ctx)
    of = msg["of"]
    listed = hashlib.sha256(repr((of, msg["buckets"], msg["digests"])).encode()).hexdigest()
    if not first_time(ctx, "listing_answered", peer_id, (ours, listed)):
        return refuse(peer_id, "DIGEST", "already answered these hashes")
    rows = hivemap.digest_rows(ctx.db.conn())
    they_lack, we_lack = bk.compare(rows, msg["digests"], of, msg["buckets"], members,
                                    settled_before=ctx.now() - SETTLE_SECONDS)
    needed, pushed = 0, []
    if they_lack:
        conn = ctx.db.conn()
        entries = [hivemap.get(conn, p) for p in they_lack]
        needed = len(chunk(entries, _full_sync_chunk))
        pushed = chunk(entries, _full_sync_chunk,
                       max_chunks=_full_sync_budget(ctx, peer_id, needed))
    # They hold states we lack: our listing of those buckets makes them send them.
    asked = _asking(ctx, of, we_lack) if we_lack else []
    reply = _listings(rows, of, asked) if asked else []
    queue_to(ctx, [peer_id], *pushed, *reply)
    log.info("sync.digest", peer_id=peer_id, they_lack=len(they_lack),
             we_lack_buckets=len(we_lack), asked=len(asked), chunks=len(pushed),
             deferred_chunks=needed - len(pushed))


def on_full_sync(ctx, peer_id: str, sync: dict, auth) -> None:
    if not ctx.full_sync_limiter.allow(peer_id):
        return refuse(peer_id, "FULL_SYNC", "rate limited")
    meta, members = auth.meta, auth.members
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
    # What we learned is not offered on at once: the periodic sync carries it to the
    # members that lack it, so news a member makes at will is not multiplied.
    log.info("sync.merged", peer_id=peer_id, chunk=sync["chunk"], chunks=sync["chunks"],
             taken=taken, refused=refused)


def _full_sync_chunk(group, i, n) -> str:
    return encode(MsgType.FULL_SYNC, {"entries": group, "chunk": i, "chunks": n})
