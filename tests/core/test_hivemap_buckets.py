"""The bucketed DIGEST: a summary of 1,000 members and their listing fit one message each,
two views that differ in one member exchange only that member's bucket and state, and a
state younger than the settling time is neither pushed nor asked for (it is GOSSIP on its
way). Pure rules on made-up digests, then the real handlers on real SQLite and signatures."""
import hashlib

import pytest
from structlog.testing import capture_logs

from handlers.hivemap import buckets as bk
from handlers.hivemap import gossip, sync
from handlers.wire import messages
from handlers.wire.framing import MAX_MESSAGE_BYTES, MsgType, decode, encode
from hive_sides import Side, form_hive, pump
from hivemap_fleet import admit, signed_state, store
from storage import hive as hive_store
from storage import hivemap

pytestmark = pytest.mark.usefixtures("every_refusal_logged")


def digests(n, version=1):
    """`(peer_id, timestamp, version)` rows, as storage.hivemap.digest_rows reads them."""
    return [("02" + hashlib.sha256(b"%d" % i).hexdigest(), 1_700_000_000 + i, version)
            for i in range(n)]


def test_a_summary_and_a_listing_of_1000_members_each_fit_one_message():
    view = digests(1000)
    of = bk.buckets_for(len(view))
    summary = encode(MsgType.DIGEST, {"of": of, "salt": "ab" * 8,
                                      "hashes": bk.bucket_hashes(view, of, "ab" * 8)})
    listing, = sync._listings(view, 1, [0])
    for msg in (summary, listing):
        assert len(msg) // 2 <= MAX_MESSAGE_BYTES
        messages.parse(messages.DIGEST, decode(msg)[1])
    assert len(decode(listing)[1]["digests"]) == 1000


def test_views_that_differ_in_one_member_differ_in_one_bucket_only():
    view = digests(1000)
    changed = list(view)
    changed[417] = (view[417][0], view[417][1], 2)
    of = bk.buckets_for(len(view))
    salt = "cd" * 8
    differ = bk.differing_buckets(bk.bucket_hashes(view, of, salt),
                                  bk.bucket_hashes(changed, of, salt))
    assert differ == [bk.bucket_of(bk.prefix(view[417][0]), of)]
    members = {d[0] for d in view}
    theirs = bk.listing(view, of, differ)
    assert 0 < len(theirs) < 12                     # a bucket holds a few members
    they_lack, we_lack = bk.compare(changed, theirs, of, differ, members,
                                    settled_before=2_000_000_000)
    assert (they_lack, we_lack) == ([view[417][0]], [])
    assert bk.compare(view, bk.listing(changed, of, differ), of, differ, members,
                      settled_before=2_000_000_000) == ([], differ)
    # younger than the settling time: on its way, neither pushed nor asked for
    young = changed[417][1] - 1
    assert bk.compare(changed, theirs, of, differ, members, settled_before=young) == ([], [])


@pytest.fixture
def two_views(tmp_path, clock):
    """`a` and `e` hold the same states of 200 members; then `a` learns one newer state."""
    a, e = Side("a", tmp_path, clock), Side("e", tmp_path, clock)
    form_hive(a, e)
    hive_id = hive_store.get_meta(a.db.conn())["hive_id"]
    keys = admit(a, (a, e), 198)
    now = int(clock.now())
    entries = [signed_state(k, hive_id, version=1, timestamp=now, peers=3) for k in keys]
    store(a, entries)
    store(e, entries)
    clock.advance(sync.SETTLE_SECONDS)
    newer = signed_state(keys[57], hive_id, version=2, timestamp=int(clock.now()), peers=3)
    store(a, [newer])
    yield a, e, newer
    a.close()
    e.close()


def _exchange(a, e, clock):
    """e sends its STATE_HASH to a; every message that follows, with its type."""
    sent = []
    gossip.on_member_connected(e.ctx, a.node_id)
    pump(a, e, rounds=20, observe=lambda s, r, m: sent.append((decode(m)[0], decode(m)[1])))
    return sent


def test_one_newer_state_costs_a_summary_one_bucket_and_that_state(two_views, clock):
    a, e, newer = two_views
    clock.advance(sync.SETTLE_SECONDS)
    sent = _exchange(a, e, clock)
    kinds = [t for t, _ in sent]
    assert kinds == [MsgType.STATE_HASH, MsgType.DIGEST, MsgType.DIGEST, MsgType.FULL_SYNC]
    summary, listing = sent[1][1], sent[2][1]
    assert summary["hashes"] and len(summary["hashes"]) == 8 * summary["of"]
    assert len(listing["buckets"]) == 1 and len(listing["digests"]) < 12
    assert [x["state"] for x in sent[3][1]["entries"]] == [newer["state"]]
    assert hivemap.all_entries(a.db.conn()) == hivemap.all_entries(e.db.conn())


def test_a_state_still_settling_makes_no_exchange(two_views, clock):
    """The STATE_HASH covers the states made SETTLE_SECONDS before it was sent (and, of a
    member whose state is younger, the one it replaced): a state still on its way as
    GOSSIP leaves the hashes equal, and nothing follows them."""
    a, e, newer = two_views
    sent = _exchange(a, e, clock)
    assert [t for t, _ in sent] == [MsgType.STATE_HASH]
    assert hivemap.held(e.db.conn(), newer["state"]["peer_id"])[0] == 1
    # once it has settled, the same hashes differ and the exchange brings it
    clock.advance(sync.SETTLE_SECONDS)
    e.ctx.timers.pop("reconnect_hash")
    assert MsgType.FULL_SYNC in [t for t, _ in _exchange(a, e, clock)]
    assert hivemap.held(e.db.conn(), newer["state"]["peer_id"])[0] == 2


@pytest.mark.parametrize("body, reason", [
    ({"of": 4, "salt": "00" * 8, "hashes": "00" * 4}, "a summary needs a salt and one hash per bucket"),
    ({"of": 4}, "neither a summary nor a listing"),
    ({"of": 4, "buckets": [1, 1], "digests": []}, "buckets listed twice or out of range"),
    ({"of": 4, "buckets": [4], "digests": []}, "buckets listed twice or out of range"),
    ({"of": 1, "buckets": [0], "digests": [["00" * 8, 1, 1], ["00" * 8, 2, 1]]},
     "a member listed twice"),
    ({"of": 2, "buckets": [0], "digests": [["ff" * 8, 1, 1]]},
     "a member outside the buckets listed"),
])
def test_inconsistent_digests_are_refused_and_change_nothing(two_views, body, reason):
    a, e, _ = two_views
    before = a.snapshot()
    with capture_logs() as logs:
        a.receive(e, encode(MsgType.DIGEST, body))
    assert [x["reason"] for x in logs if x["event"] == "gossip.refused"] == [reason]
    assert a.snapshot() == before


def test_the_periodic_hash_goes_to_three_members_in_turn_and_reaches_each(tmp_path, clock):
    a = Side("a", tmp_path, clock)
    connected = sorted("02%064x" % i for i in range(10))
    rounds = [gossip.sync_partners(a.ctx, connected) for _ in range(4)]
    assert all(len(r) == gossip.SYNC_FANOUT == len(set(r)) for r in rounds)
    assert set().union(*rounds) == set(connected)          # 4 intervals x 3 cover all 10
    assert gossip.sync_partners(a.ctx, connected[:2]) == connected[:2]
    a.close()
