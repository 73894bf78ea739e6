"""Membership anti-entropy: the member list converges like the HiveMap, but by proofs.

Every sync interval, and when a member connects, a member sends its MEMBERSHIP_HASH: the
hash of every member's (id, tier, admission) and of the open proposals' votes. A member
whose hash differs answers with MEMBERSHIP_SYNC: every proof it holds (admissions signed
by the admin, decisions with their votes, leaves signed by the leaver, open proposals with
their votes), in chunks that fit a message. The receiver checks each proof as if it came
first-hand and applies what it lacked; if its hash then still differs from the sender's,
it sends its own proofs back (once per pair of hashes and interval). Nothing is taken on
the sender's word: a sync can add only what its proofs prove."""
from __future__ import annotations

import hashlib

import structlog

from handlers.council import apply, leave, proposals, records, view
from handlers.hivemap.rules import Recent, chunk
from handlers.membership import members as ms
from handlers.wire import messages, signing
from handlers.wire.framing import MsgType, encode
from storage import council as store
from storage import hive as hive_store
from storage import outbox

log = structlog.get_logger("hive.council")

SECTIONS = ("admissions", "decisions", "leaves", "open")
MAX_REMEMBERED = 1024
PRUNE_EVERY_SECONDS = 3600


def membership_hash(ctx) -> tuple[str, int]:
    conn, now = ctx.db.conn(), ctx.now()
    rows = hive_store.members(conn)
    members = [[m["peer_id"], m["tier"], records.admission_ref(m["admission"])] for m in rows]
    open_votes = [[p["proposal_id"], sorted([v["voter"], v["choice"], v["voted_at"]]
                                            for v in store.votes(conn, p["proposal_id"]))]
                  for p in store.proposals(conn) if view.status_of(conn, p, now) == "open"]
    digest = hashlib.sha256(signing.canonical_json(
        {"members": members, "open": open_votes}).encode()).hexdigest()
    return digest, len(rows)


def _proofs(ctx) -> list[dict]:
    """Every proof we hold about the current members, in the order a receiver can check
    them: admissions, then decisions (in the order they were made), leaves, open proposals."""
    conn, now = ctx.db.conn(), ctx.now()
    items: list[dict] = []
    decided, leaves = [], []
    for m in hive_store.members(conn):
        items.append({"admissions": m["admission"]})
        found = apply.proofs_of(conn, m["peer_id"], m["admission"])
        decided += found["promote"] + found["ban"] + found["unban"]
        if found["leave"] is not None:
            leaves.append(found["leave"])
    # In the order we decided them: a receiver then counts each decision's voters as they
    # were when it was made (a promotion decided later does not yet enlarge the electorate
    # of an earlier ban, nor a later ban shrink it).
    for p in sorted(decided, key=lambda p: (p["decided_at"], p["proposal_id"])):
        yes = [v for v in store.votes(conn, p["proposal_id"]) if v["choice"] == "yes"]
        items.append({"decisions": {"proposal": p["record"], "votes": yes[:messages.MAX_VOTES]}})
    items += [{"leaves": signed} for signed in leaves]
    for p in store.proposals(conn):
        if view.status_of(conn, p, now) == "open":
            # yes votes first: at most MAX_VOTES fit one item (README, known limits)
            votes = sorted(store.votes(conn, p["proposal_id"]), key=lambda v: v["choice"] != "yes")
            items.append({"open": {"proposal": p["record"], "votes": votes[:messages.MAX_VOTES]}})
    return items


def sync_messages(ctx) -> list[str]:
    ours, _ = membership_hash(ctx)

    def encode_chunk(group, i, n):
        body = {s: [] for s in SECTIONS}
        for item in group:
            (section, value), = item.items()
            body[section].append(value)
        return encode(MsgType.MEMBERSHIP_SYNC, {"hash": ours, "chunk": i, "chunks": n, **body})
    return chunk(_proofs(ctx), encode_chunk, max_items=messages.MAX_SYNC_ITEMS)


def pace(ctx, count: int) -> list[float]:
    """When each of `count` sync chunks to one peer is due: a burst of the receiver's
    bucket (ctx.full_sync_limiter, the same shape on every node) at once, then a burst per
    refill of that bucket, and never two bursts within one tick (the outbox is drained at
    least once a tick, so two bursts falling due between drains would leave together and
    the receiver would drop the second). A chunk dropped all the same is sent again at the
    next exchange of hashes."""
    limiter = ctx.full_sync_limiter
    burst = max(1, int(limiter.burst))
    gap = max(burst / limiter.rate, ctx.config().tick_seconds)
    now = ctx.clock.now()
    return [now + (i // burst) * gap for i in range(count)]


def _queue(ctx, peer_id: str, msgs: list[str], paced: bool = False) -> None:
    due = pace(ctx, len(msgs)) if paced else [None] * len(msgs)
    with ctx.db.transaction() as conn:
        for msg, at in zip(msgs, due):
            outbox.add(conn, peer_id=peer_id, msg_hex=msg, now=ctx.clock.now(), not_before=at)


def _hash_message(ctx) -> str:
    digest, count = membership_hash(ctx)
    return encode(MsgType.MEMBERSHIP_HASH, {"hash": digest, "count": count})


def _first_time(ctx, peer_id: str, pair: tuple) -> bool:
    """This pair of hashes (ours, theirs) was not answered to this peer within a sync
    interval: two views that cannot merge must not answer each other forever."""
    table = ctx.timers.get("members_answered")
    if table is None:
        table = ctx.timers["members_answered"] = Recent(MAX_REMEMBERED)
    now = ctx.clock.now()
    last = table.get(peer_id)
    if last is not None and last[0] == pair and now - last[1] < ctx.config().sync_interval:
        return False
    table.put(peer_id, (pair, now))
    return True


# -- the tick and (re)connections -----------------------------------------------------------
def on_tick(ctx) -> None:
    conn = ctx.db.conn()
    if hive_store.get_meta(conn) is None:
        return
    if ctx.every("council_prune", PRUNE_EVERY_SECONDS):
        with ctx.db.transaction() as c:
            lapsed = store.prune_lapsed(c, ctx.clock.now() - ctx.config().log_retention_seconds)
        if lapsed:
            log.info("council.pruned", lapsed_proposals=lapsed)
    if ctx.node_id not in {m["peer_id"] for m in ms.active_members(conn)}:
        return
    if not ctx.every("membership_hash", ctx.config().sync_interval):
        return
    msg = _hash_message(ctx)
    with ctx.db.transaction() as c:
        for peer in ms.connected_members(ctx):
            outbox.add(c, peer_id=peer, msg_hex=msg, now=ctx.clock.now())


def status(ctx) -> dict:
    """For hive-status: our membership hash and the proposals still open."""
    conn = ctx.db.conn()
    if hive_store.get_meta(conn) is None:
        return {"hash": None, "open_proposals": 0}
    now = ctx.now()
    digest, _ = membership_hash(ctx)
    return {"hash": digest, "open_proposals": sum(
        1 for p in store.proposals(conn) if view.status_of(conn, p, now) == "open")}


def on_joined(ctx, admin: str) -> None:
    """We just joined (WELCOME brought only our admission and the admin's): our hash to the
    admin, whose MEMBERSHIP_SYNC then brings every other member and proof."""
    on_member_connected(ctx, admin)


def on_member_connected(ctx, peer_id: str) -> None:
    conn = ctx.db.conn()
    if hive_store.get_meta(conn) is None:
        return
    active = {m["peer_id"] for m in ms.active_members(conn)}
    if peer_id in active and ctx.node_id in active:
        _queue(ctx, peer_id, [_hash_message(ctx)])


# -- MEMBERSHIP_HASH and MEMBERSHIP_SYNC ------------------------------------------------------
def on_membership_hash(ctx, peer_id: str, msg: dict, auth) -> None:
    if not ctx.sync_limiter.allow("members:" + peer_id):
        return proposals.refuse(peer_id, "MEMBERSHIP_HASH", "rate limited")
    ours, _ = membership_hash(ctx)
    if msg["hash"] == ours:
        return log.debug("council.in_sync", peer_id=peer_id)
    if not _first_time(ctx, peer_id, (ours, msg["hash"])):
        return proposals.refuse(peer_id, "MEMBERSHIP_HASH", "already answered these hashes")
    msgs = sync_messages(ctx)
    _queue(ctx, peer_id, msgs, paced=True)
    log.info("council.diverged", peer_id=peer_id, ours=ours, theirs=msg["hash"],
             chunks=len(msgs))


def on_membership_sync(ctx, peer_id: str, msg: dict, auth) -> None:
    if not ctx.full_sync_limiter.allow("members:" + peer_id):
        return proposals.refuse(peer_id, "MEMBERSHIP_SYNC", "rate limited")
    hive_id = auth.meta["hive_id"]
    refused: dict[str, int] = {}

    def count(problem):
        if problem:
            refused[problem] = refused.get(problem, 0) + 1
    for admission in msg["admissions"]:
        count(take_admission(ctx, auth.meta, admission))
    for decision in msg["decisions"]:
        count(proposals.take_decision(ctx, hive_id, decision))
    for signed in msg["leaves"]:
        count(leave.take_leave(ctx, hive_id, signed))
    for item in msg["open"]:
        pid, problem = proposals.take_proposal(ctx, hive_id, item["proposal"])
        count(problem)
        if problem is None:
            for v in item["votes"]:
                held = store.vote_of(ctx.db.conn(), pid, v["voter"])
                if held is None or held["voted_at"] < v["voted_at"]:
                    count(proposals.take_vote(ctx, hive_id, pid, v))
            proposals.tally(ctx, pid)
    ours, _ = membership_hash(ctx)
    log.info("council.synced", peer_id=peer_id, chunk=msg["chunk"], chunks=msg["chunks"],
             refused=refused, in_sync=ours == msg["hash"])
    # Only once the last chunk is in can the views be compared.
    if msg["chunk"] == msg["chunks"] - 1 and ours != msg["hash"] and \
            _first_time(ctx, peer_id, (ours, msg["hash"])):
        _queue(ctx, peer_id, sync_messages(ctx), paced=True)


def take_admission(ctx, meta: dict, admission: dict) -> str | None:
    """An admission signed by the admin: a member we missed (MEMBER_ADDED lost), or a
    departed member's return. One we hold is no news."""
    conn = ctx.db.conn()
    if admission["hive_id"] != meta["hive_id"]:
        return "admission for another hive"
    problem = ms.admission_problem(conn, admission)
    if problem == "already known":
        return None
    if problem:
        return problem
    if admission["tier"] == "admin":
        return "an admission cannot grant admin"
    if not signing.verify(ctx.lightning, meta["admin_id"], meta["hive_id"], "ADMISSION",
                          messages.unsigned(admission), admission["sig"]):
        return "admission is not signed by the hive's admin"
    ms.record_admission(ctx, admission)
    return None
