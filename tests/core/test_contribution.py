"""The contribution ledger on real SQLite: what it counts from forward_event (settled
only, members only, both sides of a member-to-member forward), bad input ignored with one
log line, the window and its pruning, the minimum volume, the throttle's hysteresis at
its marks, a bounded intake, and a restart that keeps it all."""
import pytest
from structlog.testing import capture_logs

from contribution_sides import (OPTS, OUTSIDER_X, TO_B, TO_C, TO_X, TO_Y, hive_of_three,
                                settled, tick)
from handlers.contribution import flow, view
from handlers.contribution.ledger import Ledger
from hive_sides import Side
from pyln.client import RpcException
from storage import contribution as store
from storage.db import Database


@pytest.fixture
def hive(tmp_path, clock):
    made = []

    def make(**options):
        sides = [Side(n, tmp_path, clock, **{**OPTS, **options}) for n in "abc"]
        made.extend(sides)
        return (*sides, hive_of_three(*sides))
    yield make
    for s in made:
        s.close()


def totals(side):
    return store.totals(side.db.conn(), flow.first_day(side.ctx))


def days(side):
    return store.days(side.db.conn(), 0)


def events(logs, name):
    return [e for e in logs if e["event"] == name]


BAD = [
    "not a dict",
    {"status": "settled"},                                             # everything missing
    {**settled(TO_B, TO_C, 5000), "status": "resolved"},               # unknown status
    {**settled(TO_B, TO_C, 5000), "in_channel": None},
    {**settled(TO_B, TO_C, 5000), "out_channel": "1x1"},
    {**settled(TO_B, TO_C, 5000), "out_channel": "1x1x1; DROP TABLE"},
    {**settled(TO_B, TO_C, 5000), "out_msat": "5000"},                 # a string
    {**settled(TO_B, TO_C, 5000), "out_msat": 5000.0},                 # a float
    {**settled(TO_B, TO_C, 5000), "in_msat": True},                    # a bool is an int in Python
    {**settled(TO_B, TO_C, 5000), "out_msat": -5000},
    {**settled(TO_B, TO_C, 5000), "out_msat": 0},
    settled(TO_B, TO_C, 21_000_000 * 10 ** 11 + 1, fee=0),              # more than all bitcoin
    {**settled(TO_B, TO_C, 5000), "in_msat": 4000},                    # out > in: a negative fee
    {k: v for k, v in settled(TO_B, TO_C, 5000).items() if k != "out_msat"},
]


@pytest.mark.parametrize("event", BAD, ids=range(len(BAD)))
def test_a_malformed_forward_event_is_ignored_with_one_log_line(hive, event):
    a, b, c, ledger = hive()
    with capture_logs() as logs:
        ledger.offer(event)
        tick(a, ledger)
    assert len(events(logs, "contribution.event_ignored")) == 1
    assert days(a) == [] and ledger.counts["ignored"] == 1 and ledger.counts["absorbed"] == 0


def test_an_unknown_channel_is_ignored_with_one_log_line_and_nothing_else_is_lost(hive):
    a, b, c, ledger = hive()
    ledger.offer(settled("7x7x7", TO_B, 5000))
    ledger.offer(settled(TO_C, TO_B, 8000))
    with capture_logs() as logs:
        tick(a, ledger)
    assert [e["channel"] for e in events(logs, "contribution.unknown_channel")] == ["7x7x7"]
    assert totals(a) == {c.node_id: (8000, 0), b.node_id: (0, 8000)}


def test_only_settled_forwards_count_and_only_for_members(hive):
    a, b, c, ledger = hive()
    for status in ("offered", "failed", "local_failed"):
        ledger.offer({**settled(TO_B, TO_C, 1000), "status": status})
    ledger.offer(settled(TO_X, TO_Y, 50_000))          # between two outsiders: nobody's
    ledger.offer(settled(TO_X, TO_B, 7000))            # to member b from outside
    ledger.offer(settled(TO_C, TO_X, 3000))            # from member c to outside
    ledger.offer(settled(TO_B, TO_C, 2000, fee=10))    # member to member: both sides
    with capture_logs() as logs:
        tick(a, ledger)
    assert events(logs, "contribution.event_ignored") == []
    assert totals(a) == {b.node_id: (2000, 7000), c.node_id: (3000, 2000)}
    assert OUTSIDER_X not in totals(a)


def test_sums_of_a_tick_are_added_to_the_days_buckets(hive, clock):
    a, b, c, ledger = hive()
    ledger.offer(settled(TO_B, TO_C, 1000))
    tick(a, ledger)
    ledger.offer(settled(TO_B, TO_C, 500))
    ledger.offer(settled(TO_B, TO_C, 250))
    tick(a, ledger)
    clock.advance(86400)
    ledger.offer(settled(TO_B, TO_C, 100))
    tick(a, ledger)
    assert [(r["forwarded_msat"], r["received_msat"]) for r in days(a)
            if r["peer_id"] == b.node_id] == [(1750, 0), (100, 0)]


def test_the_window_rolls_over_and_old_buckets_are_pruned(hive, clock):
    a, b, c, ledger = hive(**{"hive-contribution-window-days": 3})
    ledger.offer(settled(TO_C, TO_B, 10_000))          # b receives: ratio 0, throttled
    tick(a, ledger)
    assert store.throttled_peers(a.db.conn()) == {b.node_id}
    clock.advance(2 * 86400)
    ledger.offer(settled(TO_B, TO_C, 1000))
    tick(a, ledger)
    assert totals(a)[b.node_id] == (1000, 10_000)      # both days inside the window
    clock.advance(86400)                              # the first day leaves the window
    tick(a, ledger)
    assert totals(a)[b.node_id] == (1000, 0)
    assert [r["day"] for r in days(a) if r["peer_id"] == b.node_id] == \
        [int(clock.now() // 86400) - 1]               # pruned: only the day inside is left
    # b's received fell to nothing: its ratio is undefined, and that releases; c's
    # forwarding left the window while what it received stayed: now c is throttled.
    assert store.throttled_peers(a.db.conn()) == {c.node_id}


def test_below_the_minimum_volume_the_ratio_is_undefined_and_never_throttles(hive):
    a, b, c, ledger = hive(**{"hive-contribution-min-sat": 100})   # 100,000 msat
    ledger.offer(settled(TO_C, TO_B, 99_999))          # b took, gave nothing: but too little
    tick(a, ledger)
    assert flow.ratio(*totals(a)[b.node_id], a.config) is None
    assert store.throttled_peers(a.db.conn()) == set()
    ledger.offer(settled(TO_C, TO_B, 1))               # now exactly the minimum
    tick(a, ledger)
    assert flow.ratio(*totals(a)[b.node_id], a.config) == 0.0
    assert store.throttled_peers(a.db.conn()) == {b.node_id}


def test_the_throttle_has_hysteresis_at_its_marks(hive):
    a, b, c, ledger = hive()      # throttle below 0.5, release at 0.6
    steps = [  # (b forwards, b receives) added, then: throttled?
        ((500, 1000), False),     # 0.5: at the mark, not below
        ((0, 21), True),          # 500/1021 = 0.4897
        ((79, 0), True),          # 579/1021 = 0.567: above 0.5, still below the release
        ((33, 0), True),          # 612/1021 = 0.5994
        ((1, 0), False),          # 613/1021 = 0.6004: released
        ((0, 5), False),          # 613/1026 = 0.597: between the marks, stays released
    ]
    with capture_logs() as logs:
        for (fwd, rcv), want in steps:
            if fwd:
                ledger.offer(settled(TO_B, TO_X, fwd, fee=0))
            if rcv:
                ledger.offer(settled(TO_X, TO_B, rcv, fee=0))
            tick(a, ledger)
            assert (b.node_id in store.throttled_peers(a.db.conn())) is want, (fwd, rcv)
    changes = [(e["event"], round(e["ratio"], 4)) for e in logs
               if e["event"] in ("contribution.throttled", "contribution.released")]
    assert changes == [("contribution.throttled", 0.4897), ("contribution.released", 0.6004)]


def test_a_restart_keeps_the_ledger_and_the_throttles(hive, tmp_path):
    a, b, c, ledger = hive()
    ledger.offer(settled(TO_C, TO_B, 10_000))
    tick(a, ledger)
    before = (totals(a), store.throttles(a.db.conn()))
    a.db.close()
    a.db = a.ctx.db = a.dispatcher.db = Database(a.config.db_path)   # a new process
    a.db.migrate()
    tick(a, Ledger(a.ctx.clock))                       # a new process: an empty intake
    assert (totals(a), store.throttles(a.db.conn())) == before
    assert before[1][b.node_id]["throttled"]


def test_the_intake_is_bounded_and_counts_what_it_drops(hive):
    a, b, c, _ = hive()
    ledger = Ledger(a.ctx.clock, capacity=2)
    ledger.offer(settled(TO_B, TO_C, 1000))
    ledger.offer(settled(TO_C, TO_B, 1000))
    ledger.offer(settled(TO_B, TO_C, 1000))            # an existing sum: still absorbed
    ledger.offer(settled(TO_X, TO_B, 1000))            # a third sum: dropped
    assert ledger.stats() == {"absorbed": 3, "dropped": 0, "ignored": 0, "pending_sums": 2}
    with capture_logs() as logs:
        tick(a, ledger)
    assert [e["dropped"] for e in events(logs, "contribution.events_dropped")] == [1]
    assert ledger.stats()["dropped"] == 1 and ledger.stats()["pending_sums"] == 0
    assert totals(a)[b.node_id] == (2000, 1000)


def test_a_channel_notification_rereads_the_channel_map(hive):
    a, b, c, ledger = hive()
    ledger.offer(settled(TO_B, TO_C, 1000))
    tick(a, ledger)
    reads = a.lightning.calls.count("listpeerchannels")
    ledger.offer(settled(TO_B, TO_C, 1000))
    tick(a, ledger)
    assert a.lightning.calls.count("listpeerchannels") == reads      # cached
    # The channel to c is now to b (as if closed and another opened under that id).
    [ch] = [ch for ch in a.lightning.channels if ch["short_channel_id"] == TO_C]
    ch["peer_id"] = b.node_id
    ledger.channels_changed()
    ledger.offer(settled(TO_X, TO_C, 1000))
    tick(a, ledger)
    assert a.lightning.calls.count("listpeerchannels") == reads + 1
    assert totals(a)[b.node_id] == (2000, 1000)


def test_views_show_ratio_volumes_and_throttle_and_name_a_bad_peer_id(hive):
    a, b, c, ledger = hive()
    ledger.offer(settled(TO_C, TO_B, 4000))
    ledger.offer(settled(TO_B, TO_X, 1000))
    tick(a, ledger)
    members = {m["peer_id"]: m["contribution"] for m in view.annotate(
        a.ctx, {"our_id": a.node_id, "members": [{"peer_id": p} for p in
                                                  (a.node_id, b.node_id, c.node_id)]})["members"]}
    assert members[a.node_id] is None
    assert {k: members[b.node_id][k] for k in ("forwarded_msat", "received_msat", "ratio", "throttled")} \
        == {"forwarded_msat": 1000, "received_msat": 4000, "ratio": 0.25, "throttled": True}
    out = view.series(a.ctx, b.node_id)
    assert [(d["forwarded_msat"], d["received_msat"]) for d in out["days"]] == [(1000, 4000)]
    assert out["window_days"] == 30 and len(out["days"][0]["date"]) == 10
    assert {d["peer_id"] for d in view.series(a.ctx, None)["days"]} == {b.node_id, c.node_id}
    for bad in ("nope", 42, "02" + "zz" * 32):
        with pytest.raises(RpcException, match="peer_id: expected a node id"):
            view.series(a.ctx, bad)
    with pytest.raises(RpcException, match="peer_id: not a member"):
        view.series(a.ctx, OUTSIDER_X)
