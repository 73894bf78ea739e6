"""Intent locks between members: the tie-breaker, races, silence, at-most-once execution
across a crash, cleanup, and every bad input, on real SQLite and real signatures."""
import random

import pytest
from pyln.client import RpcException
from structlog.testing import capture_logs

from handlers.intents import execution
from handlers.intents import locks as intents
from handlers.intents.locks import INTAKE_WINDOW, MAX_INTENTS_PER_WINDOW
from handlers.wire import signing
from handlers.wire.framing import MsgType, decode, encode
from hive_sides import Side, pump
from intent_sides import (TARGET, announce, bare, funded, make_fleet, ordered, refusals,  # noqa: F401
                          settle, signed_intent, state)
from storage import hive as hive_store
from storage import intents as store
from storage import transition_log

# These tests read why each message was refused from the log.
pytestmark = pytest.mark.usefixtures("every_refusal_logged")


# -- the tie-breaker ----------------------------------------------------------------------
def test_lowest_pubkey_wins_for_random_pairs_and_arrival_orders(make_fleet, clock):
    rng = random.Random(20261124)
    sides = make_fleet([f"n{rng.getrandbits(32):08x}" for _ in range(6)])
    hold = sides[0].config.intent_hold_seconds
    for trial in range(25):
        x, y = rng.sample(sides, 2)
        target = "02" + "%064x" % rng.getrandbits(256)
        ix, iy = announce(x, target), announce(y, target)
        queued = [(x, y, m) for m in x.outgoing(y)] + [(y, x, m) for m in y.outgoing(x)]
        rng.shuffle(queued)
        for src, dst, msg in queued:
            dst.receive(src, msg)
        pump(*sides)
        settle(sides, clock, hold)
        win, lose = (ix, iy) if x.node_id < y.node_id else (iy, ix)
        winner, loser = (x, y) if x.node_id < y.node_id else (y, x)
        assert state(winner, win) == "executed", trial
        assert state(loser, lose) == "aborted", trial
        assert state(loser, win) in ("committed", "expired")      # recorded as theirs
        assert state(winner, lose) == "aborted"
        assert funded(winner, target) == 1
        assert funded(loser, target) == 0


def test_winner_is_the_lexicographically_lowest_key():
    keys = ["03" + "ff" * 32, "02" + "00" * 32, "02" + "ff" * 32]
    assert intents.winner(keys[0], keys[1]) == keys[1]
    assert intents.winner(keys[2], keys[1]) == keys[1]
    assert intents.winner(keys[0], keys[2]) == keys[2]


# -- race and silence ---------------------------------------------------------------------
def test_a_conflict_one_second_before_the_hold_ends_makes_the_loser_abort(make_fleet, clock):
    low, high = ordered(make_fleet(["a", "b"]))
    hold = high.config.intent_hold_seconds
    ours = announce(high)
    high.outgoing(low)                          # lost on the way: low never hears of it
    clock.advance(hold - 1)
    theirs = announce(low)
    with capture_logs() as logs:
        pump(low, high)
    assert state(high, ours) == "aborted"
    assert [e["event"] for e in logs if e["event"].startswith("intent.conflict")] == \
        ["intent.conflict_lost"]
    settle([low, high], clock, hold)
    assert state(low, theirs) == "executed" and state(high, ours) == "aborted"
    assert funded(high) == 0


def test_silence_commits_and_executes_once(make_fleet, clock):
    a, b = make_fleet(["a", "b"])
    iid = announce(a)
    pump(a, b)
    assert state(a, iid) == "pending" and state(b, iid) == "pending"
    settle([a, b], clock, a.config.intent_hold_seconds - 1)
    assert state(a, iid) == "pending"
    settle([a, b], clock, 1)
    assert state(a, iid) == "executed" and state(b, iid) == "committed"
    settle([a, b], clock, 5)
    log = transition_log.for_instance(a.db.conn(), "intent_lock", iid)
    assert [r["trigger"] for r in log].count("start_execution") == 1
    assert funded(a) == 1


def test_a_committed_intent_makes_a_late_lower_key_rival_yield(hold_only, make_fleet, clock):
    low, high = ordered(make_fleet(["a", "b"]))
    ours = announce(high)
    high.outgoing(low)                           # low never hears of it in time
    clock.advance(high.config.intent_hold_seconds)
    high.dispatcher.fire_due()
    assert state(high, ours) == "committed"     # its execution waits for the next tick
    late = announce(low)                         # lower key, but late
    for msg in low.outgoing(high):
        high.receive(low, msg)
    assert state(high, late) == "outranked"      # refused: ours had committed
    [back] = high.outgoing(low)                  # ... and answered with our commit
    msg_type, body = decode(back)
    assert msg_type == MsgType.INTENT and body["commit"]["initiator"] == high.node_id
    low.receive(high, back)
    assert state(low, late) == "aborted"         # low yields despite its lower key
    settle([low, high], clock, high.config.intent_hold_seconds)
    assert state(high, ours) == "executed" and state(low, late) == "aborted"
    assert state(high, late) == "aborted"        # low's INTENT_ABORT reached high
    assert funded(low) == 0


def test_the_commit_notice_reaches_a_rival_that_had_missed_the_intent(make_fleet, clock):
    low, high = ordered(make_fleet(["a", "b"]))
    hold = high.config.intent_hold_seconds
    ours = announce(high)
    pump(low, high)                              # low knows high's pending intent
    clock.advance(hold - 1)
    with pytest.raises(RpcException, match="target: held by"):
        announce(low)                            # no late preemption by the lower key
    clock.advance(1)
    high.dispatcher.fire_due()
    execution.on_tick(high.ctx)                    # commit notice, then execution
    pump(low, high)
    assert state(high, ours) == "executed"


def test_a_commit_notice_of_a_known_intent_aborts_our_pending_rival(hold_only, make_fleet, clock):
    low, high = ordered(make_fleet(["a", "b"]))
    theirs = announce(high)
    [first] = high.outgoing(low)
    clock.advance(1)
    ours = announce(low)
    low.outgoing(high)                           # ours is lost on the way
    low.receive(high, first)                     # high's intent arrives: we win by key
    assert state(low, ours) == "pending"
    clock.advance(high.config.intent_hold_seconds)
    high.dispatcher.fire_due()
    execution.on_tick(high.ctx)                    # high never heard of ours: it commits
    for msg in high.outgoing(low):
        low.receive(high, msg)                   # its commit notice: we yield
    assert state(low, ours) == "aborted" and state(high, theirs) == "executed"


def test_announce_refuses_a_target_anyone_holds(make_fleet, clock):
    low, high = ordered(make_fleet(["a", "b"]))
    announce(high)
    pump(low, high)
    with pytest.raises(RpcException, match="target: held by 0.*'s intent .* \\(pending\\)"):
        announce(low)                            # even with the lower key
    with pytest.raises(RpcException, match="target: held by our intent .* \\(pending\\)"):
        announce(high)
    settle([low, high], clock, high.config.intent_hold_seconds)
    with pytest.raises(RpcException, match="target: held by our intent .* \\(executed\\)"):
        announce(high)                           # a target just acted on stays locked


@pytest.mark.parametrize("args,message", [
    (("open_bakery", TARGET, None), "type: expected one of"),
    (("channel_open", "nope", 5), "target: expected a node id"),
    (("channel_open", TARGET, None), "amount_sat: a positive integer is required"),
    # Bans are decided by the members' votes, never by a lock race.
    (("ban_peer", TARGET, None), "type: expected one of channel_open|rebalance$"),
])
def test_hive_intent_names_the_bad_parameter(make_fleet, args, message):
    a, = make_fleet(["a"])
    with pytest.raises(RpcException, match=message):
        intents.announce(a.ctx, *args)


# -- at most once across a crash ---------------------------------------------------------
def test_an_interrupted_execution_is_reconciled_not_repeated(hold_only, make_fleet, clock):
    a, b = make_fleet(["a", "b"])
    iid = announce(a)
    clock.advance(a.config.intent_hold_seconds)
    a.dispatcher.fire_due()
    # The crash: `executing` was committed (with what existed then), the executor never ran.
    assert a.dispatcher.fire("intent_lock", iid, "start_execution",
                             data_update={"before": {"channels": []}}).ok
    execution.reconcile(a.ctx)                   # what start-up does
    inst = a.dispatcher.load("intent_lock", iid)
    assert inst.state == "failed" and "effect not found" in inst.data["failure"]
    assert funded(a) == 0
    execution.on_tick(a.ctx)
    assert funded(a) == 0                         # never run again


def test_reconcile_finds_an_effect_that_happened(make_fleet, clock):
    a, = make_fleet(["a"])
    iid = announce(a)
    clock.advance(a.config.intent_hold_seconds)
    a.dispatcher.fire_due()
    a.dispatcher.fire("intent_lock", iid, "start_execution",
                      data_update={"before": {"channels": []}})
    # The crash came after fundchannel took effect: a channel that was not there before.
    a.lightning.channels.append({"peer_id": TARGET, "channel_id": "ab" * 32,
                                 "state": "CHANNELD_AWAITING_LOCKIN"})
    execution.reconcile(a.ctx)
    assert state(a, iid) == "executed"


# -- cleanup ------------------------------------------------------------------------------
def test_finished_intents_are_removed_an_hour_after_and_out_of_the_intake_window(
        make_fleet, clock):
    a, b = make_fleet(["a", "b"])
    old = announce(a)
    settle([a, b], clock, a.config.intent_hold_seconds)
    clock.advance(1800)
    recent = announce(a, target="02" + "11" * 32)
    settle([a, b], clock, a.config.intent_hold_seconds)
    clock.advance(intents.CLEANUP_AFTER + 1)
    execution.on_tick(a.ctx)                       # finished an hour ago, but still counted
    assert {old, recent} <= {r["lock_id"] for r in store.listing(a.db.conn())}
    announced = a.dispatcher.load("intent_lock", old).data["intent"]["created_at"]
    clock.advance(announced + INTAKE_WINDOW + intents.FUTURE_SKEW // 2 - a.ctx.now())
    execution.on_tick(a.ctx)                       # still inside our own self-limit's window
    assert old in {r["lock_id"] for r in store.listing(a.db.conn())}
    clock.advance(intents.FUTURE_SKEW // 2 + 1)
    execution.on_tick(a.ctx)
    ids = {r["lock_id"] for r in store.listing(a.db.conn())}
    assert old not in ids and recent in ids
    # the evidence stays in the append-only transition log
    assert len(transition_log.for_instance(a.db.conn(), "intent_lock", old)) >= 3


# -- bad input ----------------------------------------------------------------------------
def test_bad_intents_are_refused_and_change_nothing(make_fleet, tmp_path, clock):
    a, b, c = make_fleet(["a", "b", "c"])
    hive_id = hive_store.get_meta(a.db.conn())["hive_id"]
    outsider = Side("outsider", tmp_path, clock)
    good = signed_intent(b, hive_id)
    a.receive(b, encode(MsgType.INTENT, good))
    with a.db.transaction() as conn:
        hive_store.add_ban(conn, peer_id=c.node_id, reason="test", now=0)
    before = store.listing(a.db.conn())
    stale = a.ctx.now() - a.config.intent_expire_seconds - 1
    with capture_logs() as logs:
        a.receive(outsider, encode(MsgType.INTENT, signed_intent(outsider, hive_id)))
        a.receive(c, encode(MsgType.INTENT, signed_intent(c, hive_id)))
        a.receive(b, encode(MsgType.INTENT, signed_intent(c, hive_id)))          # c's, sent by b
        a.receive(b, encode(MsgType.INTENT, signed_intent(b, hive_id, signer=c)))
        a.receive(b, encode(MsgType.INTENT, {**signed_intent(b, hive_id), "sig": "y" * 104}))
        a.receive(b, encode(MsgType.INTENT, good))                          # replay
        a.receive(b, encode(MsgType.INTENT, signed_intent(b, hive_id, created_at=stale)))
        a.receive(b, encode(MsgType.INTENT, signed_intent(b, hive_id, created_at=a.ctx.now() + 3600)))
        a.receive(b, encode(MsgType.INTENT, signed_intent(b, hive_id, amount_sat=None)))
    assert refusals(logs) == [
        "sender is not a member", "sender is banned", "initiator is not the sender",
        "not signed by its initiator", "not signed by its initiator",
        "already known (replay)", "stale", "created in the future",
        "amount_sat does not fit the intent type"]
    assert store.listing(a.db.conn()) == before
    outsider.close()


def test_bad_aborts_are_refused(make_fleet, clock):
    a, b, c = make_fleet(["a", "b", "c"])
    hive_id = hive_store.get_meta(a.db.conn())["hive_id"]
    iid = announce(b)
    pump(a, b, c)

    def abort(sender, intent_id, signer=None, initiator=None):
        body = {"intent_id": intent_id, "initiator": initiator or sender.node_id,
                "aborted_at": a.ctx.now(), "reason": "x"}
        sig = signing.sign((signer or sender).lightning, hive_id, "INTENT_ABORT", body)
        return encode(MsgType.INTENT_ABORT, {"abort": body, "sig": sig})
    with capture_logs() as logs:
        a.receive(b, abort(b, "ab" * 16))                       # no such intent
        a.receive(c, abort(c, bare(iid)))                       # b's intent id: not c's
        a.receive(c, abort(c, bare(iid), initiator=b.node_id))  # claims to be b
        a.receive(b, abort(b, bare(iid), signer=c))             # wrongly signed
    assert refusals(logs) == ["no such intent", "no such intent",
                              "initiator is not the sender", "not signed by its initiator"]
    assert state(a, iid) == "pending"
    a.receive(b, abort(b, bare(iid)))
    assert state(a, iid) == "aborted"
    # our own local intent cannot be aborted by a peer
    mine = announce(a, target="02" + "33" * 32)
    with capture_logs() as logs:
        a.receive(b, abort(b, bare(mine)))
    assert refusals(logs) == ["no such intent"] and state(a, mine) == "pending"


def test_an_intent_flood_from_one_peer_is_bounded(make_fleet, clock):
    a, b = make_fleet(["a", "b"])
    hive_id = hive_store.get_meta(a.db.conn())["hive_id"]
    with capture_logs() as logs:
        for i in range(MAX_INTENTS_PER_WINDOW + 10):
            a.receive(b, encode(MsgType.INTENT, signed_intent(
                b, hive_id, target="02" + "%064x" % (i + 1))))
        # an old created_at would escape the count: older than the window is stale
        a.receive(b, encode(MsgType.INTENT, signed_intent(
            b, hive_id, created_at=a.ctx.now() - INTAKE_WINDOW - 1, expire_seconds=86400)))
    assert len(store.listing(a.db.conn())) == MAX_INTENTS_PER_WINDOW
    assert refusals(logs) == ["too many intents from this initiator"] * 10 + \
        ["older than the intake window"]
    clock.advance(INTAKE_WINDOW + 1)
    a.receive(b, encode(MsgType.INTENT, signed_intent(b, hive_id, target="02" + "ee" * 32)))
    assert len(store.listing(a.db.conn())) == MAX_INTENTS_PER_WINDOW + 1


def test_a_member_never_announces_more_than_its_peers_accept(make_fleet, clock):
    a, b = make_fleet(["a", "b"])
    with capture_logs() as logs:
        for i in range(MAX_INTENTS_PER_WINDOW):
            announce(a, target="02" + "%064x" % (i + 1))
            settle([a, b], clock, 5)
        with pytest.raises(RpcException, match=f"peers accept at most "
                                               f"{MAX_INTENTS_PER_WINDOW} per {INTAKE_WINDOW} s"):
            announce(a, target="02" + "ff" * 32)
    assert refusals(logs) == []                  # b took every one of them
    clock.advance(INTAKE_WINDOW + 600)
    settle([a, b], clock, 0)
    announce(a, target="02" + "ff" * 32)         # the window has passed
    pump(a, b)
    assert state(b, store.listing(a.db.conn())[-1]["lock_id"]) == "pending"


def test_losing_intents_do_not_slip_past_the_flood_bound(hold_only, make_fleet, clock):
    """Rivals that lose at once stop being live; they must still count."""
    low, high = ordered(make_fleet(["a", "b"]))
    hive_id = hive_store.get_meta(low.db.conn())["hive_id"]
    announce(low)
    low.outgoing(high)
    clock.advance(low.config.intent_hold_seconds)
    low.dispatcher.fire_due()                    # ours committed: each rival gets an answer
    low.lightning.calls.clear()
    n = MAX_INTENTS_PER_WINDOW + 50
    with capture_logs() as logs:
        for _ in range(n):
            low.receive(high, encode(MsgType.INTENT, signed_intent(high, hive_id)))
    # each rival is outranked at once, and every one counts
    assert len(store.listing(low.db.conn())) == 1 + MAX_INTENTS_PER_WINDOW
    assert refusals(logs) == ["too many intents from this initiator"] * 50
    assert len(low.outgoing(high)) == MAX_INTENTS_PER_WINDOW  # one answer per rival
    assert low.lightning.calls.count("signmessage") == 0     # our signature is reused
    # one check per accepted message; the refused ones were refused before any
    assert low.lightning.calls.count("checkmessage") == MAX_INTENTS_PER_WINDOW


def test_an_executor_fault_still_ends_the_intent(make_fleet, clock):
    a, = make_fleet(["a"])
    iid = intents.announce(a.ctx, "channel_open", TARGET, 100_000)["lock_id"]
    clock.advance(a.config.intent_hold_seconds)
    a.dispatcher.fire_due()
    # fundchannel raises what no executor expects: the executor fails unexpectedly
    a.lightning.broken.add("fundchannel")
    with capture_logs() as logs:
        execution.on_tick(a.ctx)
    inst = a.dispatcher.load("intent_lock", iid)
    assert inst.state == "failed" and inst.data["failure"].startswith("executor fault")
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["intent.executor_fault"]


def test_the_lock_window_is_the_same_on_the_executor_and_its_peers(hold_only, make_fleet, clock):
    low, high = ordered(make_fleet(["a", "b"]))
    ours = announce(low)
    pump(low, high)
    settle([low, high], clock, low.config.intent_hold_seconds)
    assert state(low, ours) == "executed"
    clock.advance(low.config.intent_expire_seconds - low.config.intent_hold_seconds)
    settle([low, high], clock, 0)             # high's copy of ours expires now...
    assert state(high, ours) == "expired"
    theirs = announce(high)                  # ... and so the target is free again
    pump(low, high)
    assert state(low, theirs) == "pending"   # not refused by low's executed intent


def test_a_round_trip_longer_than_the_hold_lets_both_execute_and_is_logged(hold_only, make_fleet, clock):
    """The documented limit: no message is lost, but each arrives after the other's hold."""
    low, high = ordered(make_fleet(["a", "b"]))
    hold = low.config.intent_hold_seconds
    theirs = announce(high)
    to_low = high.outgoing(low)
    clock.advance(25)
    ours = announce(low)
    to_high = low.outgoing(high)
    clock.advance(15)
    for msg in to_low:
        low.receive(high, msg)                # low wins on key and waits
    clock.advance(hold - 40)
    high.dispatcher.fire_due()
    execution.on_tick(high.ctx)                 # high heard nothing: it commits and executes
    notices = high.outgoing(low)
    for msg in to_high:
        high.receive(low, msg)                # low's intent reaches high after its commit
    notices += high.outgoing(low)
    clock.advance(25)
    low.dispatcher.fire_due()
    execution.on_tick(low.ctx)                  # low commits and executes too
    with capture_logs() as logs:
        for msg in notices:
            low.receive(high, msg)
    assert state(high, theirs) == "executed" and state(low, ours) == "executed"
    assert "intent.both_committed" in [e["event"] for e in logs]
