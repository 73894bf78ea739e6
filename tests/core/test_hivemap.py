"""The HiveMap: fleet hash, gossip thresholds, state entries from peers, anti-entropy and
chunked FULL_SYNC, on real SQLite and real signatures."""
import random

import pytest
from structlog.testing import capture_logs

from handlers.hivemap import gossip, sync
from handlers.wire import messages, signing
from handlers.hive import SYNC_BURST
from handlers.hivemap.rules import chunk, fleet_hash, should_broadcast, summarize
from handlers.wire.framing import MAX_MESSAGE_BYTES, MsgType, decode, encode
from hive_sides import Side, form_hive, pump
from storage import hive as hive_store
from storage import hivemap

# These tests read why each message was refused from the log.
pytestmark = pytest.mark.usefixtures("every_refusal_logged")


class Cfg:
    gossip_capacity_threshold_pct = 10
    heartbeat_interval = 300


def node(i):
    return "02" + ("%02x" % (i % 256)) * 31 + "%02x" % (i // 256)


# -- pure rules -------------------------------------------------------------------------
def test_fleet_hash_is_the_same_for_the_same_states_in_any_order():
    states = [{"peer_id": node(i), "version": i + 1, "timestamp": 1000 + i, "x": i}
              for i in range(50)]
    h = fleet_hash(states)
    for seed in range(5):
        shuffled = states[:]
        random.Random(seed).shuffle(shuffled)
        assert fleet_hash(shuffled) == h
    assert fleet_hash([{**states[0], "x": 99}] + states[1:]) == h    # only id/version/ts
    assert fleet_hash([{**states[0], "version": 7}] + states[1:]) != h


def test_fleet_hash_matches_the_documented_canonical_json():
    import hashlib
    s = [{"peer_id": node(2), "version": 3, "timestamp": 5},
         {"peer_id": node(1), "version": 1, "timestamp": 9}]
    text = ('[{"peer_id":"%s","timestamp":9,"version":1},'
            '{"peer_id":"%s","timestamp":5,"version":3}]' % (node(1), node(2)))
    assert fleet_hash(s) == hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("new_capacity,expected", [
    (1090, None), (1100, None), (1110, "capacity"), (910, None), (890, "capacity")])
def test_capacity_threshold(new_capacity, expected):
    last = {"capacity_sat": 1000, "fee_policy": {"base_msat": 1, "ppm": 10}, "timestamp": 0}
    now = {"capacity_sat": new_capacity, "fee_policy": {"base_msat": 1, "ppm": 10}}
    assert should_broadcast(last, now, 100, Cfg()) == expected


def test_fee_change_heartbeat_status_and_first_broadcast():
    last = {"capacity_sat": 1000, "fee_policy": {"base_msat": 1, "ppm": 10}, "timestamp": 0}
    same = {"capacity_sat": 1000, "fee_policy": {"base_msat": 1, "ppm": 10}}
    assert should_broadcast(None, same, 0, Cfg()) == "first"
    assert should_broadcast(last, {**same, "fee_policy": {"base_msat": 1, "ppm": 11}}, 1,
                            Cfg()) == "fee_policy"
    assert should_broadcast(last, same, 299, Cfg()) is None
    assert should_broadcast(last, same, 300, Cfg()) == "heartbeat"
    assert should_broadcast(last, same, 1, Cfg(), status_event=True) == "status"
    zero = {**last, "capacity_sat": 0}
    assert should_broadcast(zero, same, 1, Cfg()) == "capacity"


def test_summary_separates_fleet_channels_from_external_peers():
    member, ext1, ext2 = node(1), node(2), node(3)
    channels = [
        {"peer_id": member, "state": "CHANNELD_NORMAL", "total_msat": 5_000_000_000,
         "fee_base_msat": 0, "fee_proportional_millionths": 0},
        {"peer_id": ext1, "state": "CHANNELD_NORMAL", "total_msat": 2_000_000_000,
         "fee_base_msat": 1000, "fee_proportional_millionths": 100},
        {"peer_id": ext1, "state": "CHANNELD_NORMAL", "total_msat": 1_000_000_000,
         "fee_base_msat": 1000, "fee_proportional_millionths": 300},
        {"peer_id": ext2, "state": "ONCHAIN", "total_msat": 9_000_000_000},
    ]
    outputs = [{"amount_msat": 700_000_000, "status": "confirmed", "reserved": False},
               {"amount_msat": 100_000_000, "status": "unconfirmed", "reserved": False},
               {"amount_msat": 100_000_000, "status": "confirmed", "reserved": True}]
    s = summarize(node(9), channels, outputs, {member, node(9)})
    assert s["capacity_sat"] == 8_000_000 and s["available_sat"] == 700_000
    assert s["peers"] == [{"peer_id": ext1, "capacity_sat": 3_000_000}]
    assert s["fee_policy"] == {"base_msat": 1000, "ppm": 200}


def _fake_entry(i):
    state = {"peer_id": node(i), "version": 1, "timestamp": 1_700_000_000,
             "capacity_sat": 10_000_000, "available_sat": 1_000_000,
             "fee_policy": {"base_msat": 1000, "ppm": 100},
             "peers": [{"peer_id": node(5000 + j), "capacity_sat": 1_000_000}
                       for j in range(3)]}
    return {"state": state, "sig": "y" * 104}


def test_a_full_sync_of_1000_members_is_chunked_within_the_message_limit():
    entries = [_fake_entry(i) for i in range(1000)]
    msgs = chunk(entries, lambda g, i, n: encode(
        MsgType.FULL_SYNC, {"entries": g, "chunk": i, "chunks": n}))
    assert len(msgs) > 1
    seen = []
    for i, m in enumerate(msgs):
        assert len(m) // 2 <= MAX_MESSAGE_BYTES
        msg_type, body = decode(m)               # each chunk is valid on its own
        parsed = messages.parse(messages.FULL_SYNC, body)
        assert msg_type == MsgType.FULL_SYNC and (parsed["chunk"], parsed["chunks"]) == \
            (i, len(msgs))
        seen += [e["state"]["peer_id"] for e in parsed["entries"]]
    assert seen == [node(i) for i in range(1000)]
    # no chunk is cut early: the next chunk's first entry would not have fitted
    entry_bytes = len(signing.canonical_json(entries[0])) + 1
    for m in msgs[:-1]:
        assert len(m) // 2 + entry_bytes > MAX_MESSAGE_BYTES


# -- handlers ---------------------------------------------------------------------------
@pytest.fixture
def fleet(tmp_path, clock):
    sides = [Side(n, tmp_path, clock) for n in ("a", "b", "c")]
    form_hive(*sides)
    yield sides
    for s in sides:
        s.close()


def refusals(logs):
    return [e["reason"] for e in logs if e["event"] == "gossip.refused"]


def give_channel(side, peer, sat, ppm=100):
    side.lightning.channels.append({
        "peer_id": peer, "state": "CHANNELD_NORMAL", "total_msat": sat * 1000,
        "fee_base_msat": 1000, "fee_proportional_millionths": ppm})


def test_ticks_broadcast_and_every_member_takes_the_state(fleet, clock):
    a, b, c = fleet
    give_channel(a, node(77), 1_000_000)
    gossip.on_tick(a.ctx)
    pump(a, b, c)
    for s in fleet:
        entry = hivemap.get(s.db.conn(), a.node_id)
        assert entry["state"]["capacity_sat"] == 1_000_000 and entry["state"]["version"] == 1
    gossip.on_tick(a.ctx)                  # nothing changed: no new version
    assert hivemap.get(a.db.conn(), a.node_id)["state"]["version"] == 1
    give_channel(a, node(78), 50_000)      # +5%: below the threshold
    gossip.on_tick(a.ctx)
    assert hivemap.get(a.db.conn(), a.node_id)["state"]["version"] == 1
    clock.advance(a.config.heartbeat_interval)
    gossip.on_tick(a.ctx)
    assert hivemap.get(a.db.conn(), a.node_id)["state"]["version"] == 2


def _signed_state(side, hive_id, **over):
    state = {"peer_id": side.node_id, "version": 1, "timestamp": side.ctx.now(),
             "capacity_sat": 5, "available_sat": 6,
             "fee_policy": {"base_msat": 0, "ppm": 1}, "peers": []}
    state.update(over)
    signer = over.pop("_signer", side)
    state.pop("_signer", None)
    return {"state": state, "sig": signing.sign(signer.lightning, hive_id, "STATE", state)}


def test_bad_gossip_changes_nothing(fleet, tmp_path, clock):
    a, b, c = fleet
    hive_id = hive_store.get_meta(a.db.conn())["hive_id"]
    outsider = Side("outsider", tmp_path, clock)
    good = _signed_state(b, hive_id, version=5)
    b_state = dict(good["state"])
    a.receive(b, encode(MsgType.GOSSIP, good))
    before = hivemap.all_entries(a.db.conn())
    cases = [
        (outsider, _signed_state(outsider, hive_id)),                  # non-member sender
        (c, _signed_state(outsider, hive_id)),                          # about a non-member
        (c, {"state": {**b_state, "version": 6},                         # B's state, signed by C
             "sig": signing.sign(c.lightning, hive_id, "STATE", {**b_state, "version": 6})}),
        (b, good),                                                       # replayed
        (b, _signed_state(b, hive_id, version=4)),                      # older
        (b, _signed_state(b, hive_id, version=5 + 100_001)),           # far future version
        (b, _signed_state(b, hive_id, version=6, timestamp=b.ctx.now() + 3600)),
        (b, _signed_state(b, hive_id, version=6, timestamp=b.ctx.now() - 7200)),
        (b, _signed_state(b, "ab" * 16, version=6)),                    # another hive's
    ]
    with capture_logs() as logs:
        for sender, entry in cases:
            a.receive(sender, encode(MsgType.GOSSIP, entry))
    assert refusals(logs) == [
        "sender is not a member", "not a member", "not signed by the member it describes",
        "not newer than the version held", "not newer than the version held",
        "version too far ahead", "timestamp in the future", "timestamp too old",
        "not signed by the member it describes"]
    assert hivemap.all_entries(a.db.conn()) == before
    outsider.close()


def test_full_sync_takes_the_good_entries_and_not_the_forged(fleet):
    a, b, c = fleet
    hive_id = hive_store.get_meta(a.db.conn())["hive_id"]
    good_b = _signed_state(b, hive_id, version=3)
    good_c = _signed_state(c, hive_id, version=2)
    forged_state = {**good_c["state"], "peer_id": a.node_id, "version": 9,
                    "capacity_sat": 10**9}
    forged = {"state": forged_state,               # about a, signed by b
              "sig": signing.sign(b.lightning, hive_id, "STATE", forged_state)}
    msg = encode(MsgType.FULL_SYNC, {"entries": [forged, good_b, good_c], "chunk": 0,
                                     "chunks": 1})
    with capture_logs() as logs:
        a.receive(b, msg)
    [merged] = [e for e in logs if e["event"] == "sync.merged"]
    assert merged["taken"] == 2
    assert merged["refused"] == {"not signed by the member it describes": 1}
    assert hivemap.get(a.db.conn(), c.node_id)["state"]["version"] == 2
    assert hivemap.get(a.db.conn(), b.node_id)["state"]["version"] == 3
    assert hivemap.get(a.db.conn(), a.node_id) is None


def test_full_sync_work_is_bounded_by_the_hive_size(fleet):
    a, b, c = fleet
    hive_id = hive_store.get_meta(a.db.conn())["hive_id"]
    entries = [_signed_state(b, hive_id, version=v) for v in range(1, 60)]   # b, 59 times
    entries.append(_signed_state(c, hive_id, version=4))
    a.lightning.calls.clear()
    with capture_logs() as logs:
        a.receive(b, encode(MsgType.FULL_SYNC, {"entries": entries, "chunk": 0, "chunks": 1}))
    [merged] = [e for e in logs if e["event"] == "sync.merged"]
    assert merged["taken"] == 1 and merged["refused"] == {"not a member, or listed twice": 59}
    assert a.lightning.calls.count("checkmessage") == 1
    assert hivemap.get(a.db.conn(), b.node_id) is None


def test_state_hash_floods_are_rate_limited(fleet):
    a, b, c = fleet
    gossip.on_tick(a.ctx)                # a holds an entry, so b's empty view differs
    pump(a)
    msg = encode(MsgType.STATE_HASH, {"hash": "00" * 32, "count": 0})
    a.lightning.calls.clear()
    with capture_logs() as logs:
        for _ in range(50):
            a.receive(b, msg)
    # one answer; the rest cost nothing: rate-limited, or the same hashes answered already
    assert sum(e["event"] == "sync.diverged" for e in logs) == 1
    assert refusals(logs).count("rate limited") == 50 - SYNC_BURST
    assert refusals(logs).count("already answered these hashes") == SYNC_BURST - 1
    assert "signmessage" not in a.lightning.calls and "checkmessage" not in a.lightning.calls


@pytest.mark.parametrize("payload", [
    "8019" + b"HIVE".hex() + b'{"v":1,"entries":"x","chunk":0,"chunks":1}'.hex(),
    "8019" + b"HIVE".hex() + b'{"v":1,"entries":[{"state":{},"sig":""}],"chunk":0,"chunks":1}'.hex(),
    "8011" + b"HIVE".hex() + b'{"v":1,"state":{"peer_id":5}}'.hex(),
    "8013" + b"HIVE".hex() + b'{"v":1,"hash":"zz","count":-1}'.hex(),
    "8015" + b"HIVE".hex() + b'{"v":1,"digests":[{"peer_id":"zz","version":1,"timestamp":1}]}'.hex(),
    "8015" + b"HIVE".hex() + b'{"v":1,"digests":{}}'.hex(),
    "8011" + b"HIVE".hex() + "37" * 70000,
])
def test_malformed_hivemap_payloads_change_nothing(fleet, payload):
    a, b, c = fleet
    before = hivemap.all_entries(a.db.conn()), a.snapshot()
    a.receive(b, payload)
    assert (hivemap.all_entries(a.db.conn()), a.snapshot()) == before


def test_anti_entropy_converges_after_divergence(fleet, clock):
    a, b, c = fleet
    # Partition: each side changes and broadcasts, but the messages are lost.
    give_channel(a, node(70), 1_000_000)
    give_channel(c, node(71), 2_000_000)
    gossip.on_tick(a.ctx)
    gossip.on_tick(c.ctx)
    for s in fleet:
        for o in fleet:
            if o is not s:
                s.outgoing(o)      # dropped
    hashes = {fleet_hash(e["state"] for e in hivemap.all_entries(s.db.conn())) for s in fleet}
    assert len(hashes) > 1
    clock.advance(sync.SETTLE_SECONDS)     # the cut lasted: the states are no longer in flight
    # Heal: a reconnects to b, and b to c (a and c stay apart): anti-entropy alone brings
    # everyone level, news crossing one hop per sync interval.
    a.lightning.connected, c.lightning.connected = {b.node_id}, {b.node_id}
    gossip.on_member_connected(a.ctx, b.node_id)
    gossip.on_member_connected(b.ctx, c.node_id)
    pump(a, b, c)
    clock.advance(a.config.sync_interval)
    for s in fleet:
        gossip.on_tick(s.ctx)            # (b also broadcasts its first state)
    pump(a, b, c)
    views = [hivemap.all_entries(s.db.conn()) for s in fleet]
    assert views[0] == views[1] == views[2] and len(views[0]) == 3


def test_the_hivemap_survives_reopening_the_database(fleet, tmp_path, clock):
    a, b, c = fleet
    give_channel(a, node(70), 1_000_000)
    gossip.on_tick(a.ctx)
    pump(a, b, c)
    before = hivemap.all_entries(b.db.conn())
    b.db.close()
    from storage.db import Database
    reopened = Database(b.config.db_path)
    assert hivemap.all_entries(reopened.conn()) == before
    reopened.close()
    b.db = Database(b.config.db_path)       # for the fixture's close


def test_topology_sums_the_fleet_capacity_per_target(fleet):
    a, b, c = fleet
    target = node(70)
    give_channel(a, target, 1_000_000)
    give_channel(b, target, 500_000)
    for s in (a, b):
        gossip.on_tick(s.ctx)
    pump(a, b, c)
    view = gossip.topology_view(c.ctx)
    [t] = view["targets"]
    assert t["peer_id"] == target and t["total_capacity_sat"] == 1_500_000
    assert sorted(t["members"]) == sorted([a.node_id, b.node_id])
    assert {m["peer_id"] for m in view["members"]} == {a.node_id, b.node_id}


def test_two_states_of_one_version_settle_the_same_everywhere(fleet):
    a, b, c = fleet
    hive_id = hive_store.get_meta(a.db.conn())["hive_id"]
    now = b.ctx.now()
    early = _signed_state(b, hive_id, version=5, timestamp=now - 10)
    late = _signed_state(b, hive_id, version=5, timestamp=now)
    a.receive(b, encode(MsgType.GOSSIP, early))
    c.receive(b, encode(MsgType.GOSSIP, late))
    for side, other in ((a, late), (c, early)):
        side.receive(b, encode(MsgType.FULL_SYNC, {"entries": [other], "chunk": 0, "chunks": 1}))
    assert hivemap.get(a.db.conn(), b.node_id) == hivemap.get(c.db.conn(), b.node_id) == late


def test_states_of_members_that_left_are_pruned(fleet):
    a, b, c = fleet
    for s in (a, b):
        give_channel(s, node(70), 1_000_000)
        gossip.on_tick(s.ctx)
    pump(a, b, c)
    assert hivemap.get(a.db.conn(), b.node_id) is not None
    a.dispatcher.fire("member_tier", b.node_id, "leave")
    gossip.on_tick(a.ctx)
    assert hivemap.get(a.db.conn(), b.node_id) is None
    assert hivemap.get(a.db.conn(), a.node_id) is not None


def test_states_are_pruned_once_per_change_of_the_membership(fleet):
    """The DELETE of non-members' states runs when the membership changed, not at every
    tick (a state only ever comes from a member: nothing new to drop until then)."""
    a, b, c = fleet
    gossip.on_tick(a.ctx)
    stray = {"peer_id": node(71), "version": 1, "timestamp": a.ctx.now()}
    with a.db.transaction() as conn:         # set-up only: no handler stores a non-member's
        hivemap.put_if_newer(conn, stray, "sig", a.ctx.clock.now())
    gossip.on_tick(a.ctx)
    assert hivemap.held(a.db.conn(), node(71)) is not None       # no change: no DELETE
    a.dispatcher.fire("member_tier", c.node_id, "leave")
    gossip.on_tick(a.ctx)
    assert hivemap.held(a.db.conn(), node(71)) is None


def test_a_member_on_the_ban_list_no_longer_counts(fleet):
    a, b, c = fleet
    hive_id = hive_store.get_meta(a.db.conn())["hive_id"]
    with a.db.transaction() as conn:
        hive_store.add_ban(conn, peer_id=c.node_id, reason="test", now=0)
    with capture_logs() as logs:
        a.receive(b, encode(MsgType.GOSSIP, _signed_state(c, hive_id)))   # relayed by b
    assert refusals(logs) == ["not a member"]


def test_our_own_state_far_ahead_is_taken_back_and_we_publish_above_it(fleet, clock):
    """Our database was restored from an old backup (or a peer replays our newer state):
    peers hold a version of ours far above the one we hold. Signed by us, it is taken back
    whatever the jump, and our next broadcast continues above it, so peers take it."""
    a, b, c = fleet
    hive_id = hive_store.get_meta(a.db.conn())["hive_id"]
    gossip.on_tick(a.ctx)
    pump(a, b, c)
    held = hivemap.get(a.db.conn(), a.node_id)["state"]
    ahead = _signed_state(a, hive_id, version=held["version"] + gossip.MAX_VERSION_JUMP + 5,
                          timestamp=held["timestamp"])
    with b.db.transaction() as conn:     # b still holds what we sent before the restore
        hivemap.put_if_newer(conn, ahead["state"], ahead["sig"], clock.now())
    a.receive(b, encode(MsgType.FULL_SYNC, {"entries": [ahead], "chunk": 0, "chunks": 1}))
    assert hivemap.get(a.db.conn(), a.node_id) == ahead
    clock.advance(a.config.heartbeat_interval)
    gossip.on_tick(a.ctx)
    pump(a, b)
    ours = hivemap.get(a.db.conn(), a.node_id)["state"]
    assert ours["version"] == ahead["state"]["version"] + 1
    assert hivemap.get(b.db.conn(), a.node_id)["state"] == ours


def test_another_members_state_far_ahead_is_still_refused(fleet):
    a, b, c = fleet
    hive_id = hive_store.get_meta(a.db.conn())["hive_id"]
    a.receive(b, encode(MsgType.GOSSIP, _signed_state(b, hive_id, version=3)))
    far = _signed_state(b, hive_id, version=3 + gossip.MAX_VERSION_JUMP + 1)
    with capture_logs() as logs:
        a.receive(c, encode(MsgType.FULL_SYNC, {"entries": [far], "chunk": 0, "chunks": 1}))
    [merged] = [e for e in logs if e["event"] == "sync.merged"]
    assert merged["refused"] == {"version too far ahead": 1}
    assert hivemap.get(a.db.conn(), b.node_id)["state"]["version"] == 3
