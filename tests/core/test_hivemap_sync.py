"""Anti-entropy at the sizes the limits allow: a full view reaches an empty node in a bounded
number of sync rounds, and a member making news cannot make the others amplify it. Real
handlers, real rate limiters, real signatures, SQLite; time moves only by the ManualClock."""
import math

import pytest
from structlog.testing import capture_logs

from handlers.hivemap import gossip, sync
from handlers.hivemap.buckets import bucket_of, buckets_for, prefix
from handlers.hivemap.rules import chunk
from handlers.wire import signing
from handlers.hive import FULL_SYNC_BURST
from handlers.wire.framing import MsgType, decode, encode
from hive_sides import Side, form_hive, pump
from hivemap_fleet import admit, signed_state, store
from storage import hive as hive_store
from storage import hivemap

MEMBERS = 100                  # a large hive (hive-max-members allows 1,000; see tests/sim)
EXTERNAL_PEERS = 200           # the most a state lists


def views_equal(x, y) -> bool:
    return hivemap.all_entries(x.db.conn()) == hivemap.all_entries(y.db.conn())


def sync_round(clock, sides) -> None:
    """One sync interval: every side ticks (its periodic STATE_HASH), then messages flow."""
    clock.advance(sides[0].config.sync_interval)
    for s in sides:
        gossip.on_tick(s.ctx)
    pump(*sides, rounds=50)


@pytest.fixture
def big_view(tmp_path, clock):
    """`a` holds the states of 100 members (two real sides and 98 keys), 200 peers each;
    `e` is a member that holds none yet."""
    a, e = Side("a", tmp_path, clock), Side("e", tmp_path, clock)
    form_hive(a, e)
    hive_id = hive_store.get_meta(a.db.conn())["hive_id"]
    keys = admit(a, (a, e), MEMBERS - 2)
    now = int(clock.now())
    store(a, [signed_state(k, hive_id, version=1, timestamp=now, peers=EXTERNAL_PEERS)
              for k in keys])
    yield a, e, keys, hive_id
    a.close()
    e.close()


def test_a_full_view_of_100_members_reaches_an_empty_node_in_bounded_rounds(big_view, clock):
    a, e, keys, _ = big_view
    held = hivemap.all_entries(a.db.conn())
    chunks = sum(1 for _ in chunk(held, lambda g, i, n: encode(
        MsgType.FULL_SYNC, {"entries": g, "chunk": i, "chunks": n})))
    assert chunks > FULL_SYNC_BURST           # more than a receiver takes at once
    bound = math.ceil(chunks / FULL_SYNC_BURST) + 2
    with capture_logs() as logs:
        for rounds in range(1, bound + 1):
            sync_round(clock, [a, e])
            if views_equal(a, e):
                break
    # chunks are sent at the pace the receiver takes them: none is sent to be dropped
    assert not [x for x in logs if x.get("reason") == "rate limited"]
    assert views_equal(a, e), (
        f"after {bound} rounds e holds {len(hivemap.all_entries(e.db.conn()))} "
        f"of {len(hivemap.all_entries(a.db.conn()))} states")
    assert len(hivemap.all_entries(e.db.conn())) == MEMBERS


def test_a_partial_difference_sends_only_the_changed_entries(big_view, clock):
    a, e, keys, hive_id = big_view
    for _ in range(10):
        sync_round(clock, [a, e])
        if views_equal(a, e):
            break
    assert views_equal(a, e)
    now = int(clock.now())
    changed = [signed_state(k, hive_id, version=2, timestamp=now, peers=EXTERNAL_PEERS,
                            salt=1) for k in keys[:10]]
    store(a, changed)
    sent = []
    clock.advance(a.config.sync_interval)
    for s in (a, e):
        gossip.on_tick(s.ctx)
    for _ in range(50):
        moved = False
        for x, y in ((a, e), (e, a)):
            for msg in x.outgoing(y):
                sent.append(decode(msg))
                y.receive(x, msg)
                moved = True
        if not moved:
            break
    assert views_equal(a, e)
    pushed = [entry["state"]["peer_id"] for t, body in sent if t == MsgType.FULL_SYNC
              for entry in body["entries"]]
    assert sorted(pushed) == sorted(k.node_id for k in keys[:10])


@pytest.mark.parametrize("targets", [1, 4])
def test_a_member_making_news_cannot_make_the_others_amplify_it(tmp_path, clock, targets):
    """A member can sign a new version of its own state at will and push it in FULL_SYNCs
    (to one member, or to all four) as fast as the receivers' limits take them. What the
    honest members send meanwhile and in the two sync rounds after it stays within 4x what
    the member sent."""
    sides = [Side(n, tmp_path, clock) for n in ("a", "b", "c", "d", "m")]
    form_hive(*sides)
    *honest, m = sides
    hive_id = hive_store.get_meta(m.db.conn())["hive_id"]
    for _ in range(2):                         # everyone's first state, everywhere
        sync_round(clock, sides)
    version = hivemap.get(m.db.conn(), m.node_id)["state"]["version"]
    sent_in = sent_out = 0

    def flow():
        def count(x, _y, msg):
            nonlocal sent_out
            if x is not m:
                sent_out += len(msg) // 2
        pump(*sides, rounds=50, observe=count)

    for second in range(2 * FULL_SYNC_BURST):  # one a second: a receiver's sustained rate
        clock.advance(1)
        for h in honest[:targets]:
            version += 1
            state = {"peer_id": m.node_id, "version": version, "timestamp": int(clock.now()),
                     "capacity_sat": version, "available_sat": 0,
                     "fee_policy": {"base_msat": 0, "ppm": 0}, "peers": []}
            msg = encode(MsgType.FULL_SYNC, {
                "entries": [{"state": state, "sig": signing.sign(
                    m.lightning, hive_id, "STATE", state)}], "chunk": 0, "chunks": 1})
            sent_in += len(msg) // 2
            h.receive(m, msg)
            flow()
    for _ in range(2):     # the news settles within two syncs (one exchange at a time)
        sync_round(clock, honest)
        flow()
    latest = {hivemap.get(h.db.conn(), m.node_id)["state"]["version"] for h in honest}
    assert sent_out / sent_in < 4, f"x{sent_out / sent_in:.1f} ({sent_out} B for {sent_in} B)"
    assert latest == {version}                 # and the news still reached everyone
    for s in sides:
        s.close()


def test_answered_hashes_are_remembered_in_a_bounded_lru(fleet_of_keys, monkeypatch):
    """The table of hashes answered per peer is bounded, and past the bound it forgets the
    oldest answers only (it used to be emptied whole past 1000 peers, forgetting the
    answer just given too). The bound is lowered here: reaching 1000 members through the
    handlers takes too long for a unit test."""
    a, keys = fleet_of_keys
    monkeypatch.setattr(gossip, "MAX_REMEMBERED", 3, raising=False)
    # Every hash answered on arrival (not one exchange per SETTLE_SECONDS): the table is
    # what this test looks at.
    monkeypatch.setattr(sync, "SETTLE_SECONDS", 0)
    msg = encode(MsgType.STATE_HASH, {"hash": "00" * 32, "count": 0})
    for k in keys:
        a.receive(k.node_id, msg)
    assert len(a.ctx.timers["answered"]) <= 3
    with capture_logs() as logs:
        for k in reversed(keys):          # the same hashes again, within the interval
            a.receive(k.node_id, msg)
    answered = {e["peer_id"] for e in logs if e["event"] == "sync.diverged"}
    refused = {e["peer_id"] for e in logs if e.get("reason") == "already answered these hashes"}
    assert refused == {k.node_id for k in keys[-3:]}     # the 3 most recent are remembered
    assert answered == {k.node_id for k in keys[:-3]}


def test_a_digest_listing_a_member_twice_gets_no_answer(fleet_of_keys):
    a, keys = fleet_of_keys
    twice = [[prefix(keys[0].node_id), v, 1] for v in (1, 2)]
    before = a.snapshot()
    with capture_logs() as logs:
        a.receive(keys[1].node_id, encode(MsgType.DIGEST, {"of": 1, "buckets": [0],
                                                           "digests": twice}))
    assert [e["reason"] for e in logs if e["event"] == "gossip.refused"] == [
        "a member listed twice"]
    assert a.snapshot() == before


@pytest.fixture
def fleet_of_keys(tmp_path, clock):
    a, b = Side("a", tmp_path, clock), Side("b", tmp_path, clock)
    form_hive(a, b)
    keys = admit(a, (a,), 6)
    gossip.on_tick(a.ctx)                 # a holds a state, so an empty view differs
    yield a, keys
    a.close()
    b.close()


def _cut_off_with_a_new_state(tmp_path, clock) -> list:
    """Four members level with each other; then `a` is cut off from the others and
    broadcasts a new state, which reaches no one. Returns [a, b, c, d]."""
    sides = [Side(n, tmp_path, clock) for n in ("a", "b", "c", "d")]
    form_hive(*sides)
    a, *others = sides
    sync_round(clock, sides)
    assert all(views_equal(a, o) for o in others)
    a.lightning.connected = set()
    for o in others:
        o.lightning.connected.discard(a.node_id)
    a.lightning.channels.append({"peer_id": "02" + "77" * 32, "state": "CHANNELD_NORMAL",
                                 "total_msat": 10 ** 9, "fee_base_msat": 1000,
                                 "fee_proportional_millionths": 100})
    clock.advance(a.config.sync_interval)
    gossip.on_tick(a.ctx)                        # a's new state reaches no one
    return sides


def test_a_burst_of_reconnections_costs_one_exchange_per_node(tmp_path, clock):
    """`a` changed while cut off; three members come back at once. `a` sends its hash to
    the first only (one exchange levels both ways); each of the others sends its own to
    `a`, which takes one exchange at a time; every view is level after the next periodic
    STATE_HASH."""
    sides = _cut_off_with_a_new_state(tmp_path, clock)
    a, *others = sides
    assert not any(views_equal(a, o) for o in others)
    clock.advance(sync.SETTLE_SECONDS)           # a stays cut off a while
    a.lightning.connected = {o.node_id for o in others}
    for o in others:
        o.lightning.connected.add(a.node_id)
    with capture_logs() as logs:
        for o in others:
            gossip.on_member_connected(a.ctx, o.node_id)
            gossip.on_member_connected(o.ctx, a.node_id)
    hashes = []
    pump(*sides, rounds=50, observe=lambda s, r, m: hashes.append((s, r)) if decode(
        m)[0] == MsgType.STATE_HASH else None)
    name = dict(zip(sides, "abcd"))
    assert [(name[s], name[r]) for s, r in hashes if s is a] == [("a", "b")]
    assert sorted(name[s] for s, r in hashes if r is a) == ["b", "c", "d"]
    assert [x["peer_id"] for x in logs if x["event"] == "sync.reconnect_deferred"] == [
        others[1].node_id, others[2].node_id]
    # a takes one exchange at a time (each would bring it the same entries): b's levels b;
    # c and d are levelled at the next periodic STATE_HASH.
    assert views_equal(a, others[0])
    sync_round(clock, sides)
    assert all(views_equal(a, o) for o in others)


def test_a_state_made_while_members_were_away_reaches_each_as_it_comes_back(tmp_path, clock):
    """`a` broadcast a new state while cut off; the members come back within the settling
    time, when a hash exchange still leaves that state out. Each gets it from `a` as it
    connects (not only the first, which gets the hash), and is level without waiting for
    a periodic STATE_HASH. Once the state has settled, a reconnection carries no GOSSIP."""
    sides = _cut_off_with_a_new_state(tmp_path, clock)
    a, *others = sides
    clock.advance(sync.SETTLE_SECONDS - 1)
    a.lightning.connected = {o.node_id for o in others}
    sent = []
    for o in others:
        o.lightning.connected.add(a.node_id)
        gossip.on_member_connected(a.ctx, o.node_id)
    pump(*sides, rounds=50, observe=lambda s, r, m: sent.append((s, r, decode(m)[0])))
    name = dict(zip(sides, "abcd"))
    assert sorted(name[r] for s, r, t in sent if s is a and t == MsgType.GOSSIP) == [
        "b", "c", "d"]
    assert all(views_equal(a, o) for o in others)
    # settled: a member that comes back gets at most our hash
    clock.advance(a.config.sync_interval)
    sent.clear()
    gossip.on_member_connected(a.ctx, others[0].node_id)
    pump(*sides, rounds=50, observe=lambda s, r, m: sent.append((s, r, decode(m)[0])))
    assert [t for s, r, t in sent if s is a] == [MsgType.STATE_HASH]


def test_a_state_hash_without_a_settling_time_covers_every_state_held(big_view, clock):
    """An older member's STATE_HASH has no `settled`: its hash covers every state it holds,
    and is compared with ours over every state we hold."""
    a, e, keys, hive_id = big_view
    clock.advance(sync.SETTLE_SECONDS)
    full, count = gossip.our_hash(a.ctx)
    newer = signed_state(keys[3], hive_id, version=2, timestamp=int(clock.now()), peers=3)
    store(a, [newer])
    settled_now = gossip.our_hash(a.ctx, int(clock.now()) - sync.SETTLE_SECONDS)
    assert settled_now == (full, count)          # the newer state is still settling
    assert gossip.our_hash(a.ctx)[0] != full     # but every state held has changed
    with capture_logs() as logs:
        a.receive(e, encode(MsgType.STATE_HASH, {"hash": full, "count": count}))
    assert [x["event"] for x in logs if x["event"].startswith("sync.")] == ["sync.diverged"]
    with capture_logs() as logs:
        a.receive(e, encode(MsgType.STATE_HASH, {
            "hash": full, "count": count, "settled": int(clock.now()) - sync.SETTLE_SECONDS}))
    assert [x["event"] for x in logs if x["event"].startswith("sync.")] == ["sync.in_sync"]


@pytest.mark.parametrize("first", ["ours", "theirs", "together"])
def test_a_member_asks_one_member_at_a_time_for_what_it_lacks(tmp_path, clock, first):
    """`a` lacks 30 states that `b` and `c` hold. `a` sends its hash to `b` and `c` sends
    its own to `a` (as after a healed cut): each exchange would bring `a` all 30. `a` asks
    only the first member it exchanges with for the buckets concerned, whichever exchange
    starts first (or both at once); the other exchange only pushes what `a` holds and the
    other lacks."""
    a, b, c = (Side(n, tmp_path, clock) for n in ("a", "b", "c"))
    form_hive(a, b, c)
    hive_id = hive_store.get_meta(a.db.conn())["hive_id"]
    keys = admit(a, (a, b, c), 30)
    entries = [signed_state(k, hive_id, version=1, timestamp=int(clock.now()), peers=3)
               for k in keys]
    store(b, entries)
    store(c, entries)
    clock.advance(sync.SETTLE_SECONDS)
    got = []

    def observe(s, r, m):
        kind, body = decode(m)
        if r is a and kind == MsgType.FULL_SYNC:
            got.extend((s, e["state"]["peer_id"]) for e in body["entries"])
    def step():                 # one message from every side to every other
        for s in (a, b, c):
            for r in (a, b, c):
                if s is not r:
                    for m in s.outgoing(r):
                        observe(s, r, m)
                        r.receive(s, m)
    starts = [(a, b), (c, a)] if first == "ours" else [(c, a), (a, b)]
    for s, r in starts:
        gossip.queue_to(s.ctx, [r.node_id], gossip.our_hash_message(s.ctx))
        if first != "together":
            step()
    pump(a, b, c, rounds=50, observe=observe)
    assert sorted(p for _, p in got) == sorted(k.node_id for k in keys)
    assert len({s for s, _ in got}) == 1
    assert views_equal(a, b) and views_equal(a, c)


def test_a_second_exchange_still_asks_for_buckets_the_first_did_not(tmp_path, clock):
    """`a` lacks one newer state that only `b` holds and another that only `c` holds, in
    other buckets (as after lost GOSSIP): both exchanges, at once, bring `a` what each
    holds."""
    a, b, c = (Side(n, tmp_path, clock) for n in ("a", "b", "c"))
    form_hive(a, b, c)
    hive_id = hive_store.get_meta(a.db.conn())["hive_id"]
    keys = admit(a, (a, b, c), 30)
    now = int(clock.now())
    entries = [signed_state(k, hive_id, version=1, timestamp=now, peers=3) for k in keys]
    for side in (a, b, c):
        store(side, entries)
    of = buckets_for(33)
    x = keys[0]
    y = next(k for k in keys if bucket_of(prefix(k.node_id), of) !=
             bucket_of(prefix(x.node_id), of))
    store(b, [signed_state(x, hive_id, version=2, timestamp=now + 1, peers=3)])
    store(c, [signed_state(y, hive_id, version=2, timestamp=now + 1, peers=3)])
    clock.advance(sync.SETTLE_SECONDS + 1)
    gossip.queue_to(a.ctx, [b.node_id], gossip.our_hash_message(a.ctx))
    gossip.queue_to(c.ctx, [a.node_id], gossip.our_hash_message(c.ctx))
    pump(a, b, c, rounds=50)
    assert hivemap.held(a.db.conn(), x.node_id)[0] == 2
    assert hivemap.held(a.db.conn(), y.node_id)[0] == 2
