"""Executors whose calls run on the bridge's pool: the intent ends on the call's outcome
(an event on the worker), an error body fails it with its reason, and a timed-out call
is reconciled, never made again."""
import pytest

from bridge_sides import BridgeSide
from handlers.intents import execution
from handlers.intents import locks as intents
from hive_sides import form_hive

TARGET = "03" + "5a" * 32
OTHER = "02" + "6b" * 32


@pytest.fixture
def side(tmp_path, clock):
    s = BridgeSide("a", tmp_path, clock, **{"hive-bridge-timeout-seconds": 15})
    s.bridge.start(s.ctx)
    s.settle()
    form_hive(s)
    s.settle()
    s.lightning.add_channel(TARGET, "1x1x1")
    s.lightning.add_channel(OTHER, "2x2x2")
    s.lightning.add_channel(OTHER, "4x4x4")
    yield s
    s.close()


# What a rebalance intent carries; the fee cap and source are not what a rule would pick.
CARRIED = {"from_channel": "4x4x4", "to_channel": "1x1x1", "max_fee_sats": 123}


def run(side, clock, kind="rebalance", amount=50_000):
    carried = CARRIED if kind == "rebalance" else {}
    iid = intents.announce(side.ctx, kind, TARGET, amount, **carried)["lock_id"]
    clock.advance(side.config.intent_hold_seconds)
    side.dispatcher.fire_due()
    execution.on_tick(side.ctx)
    return iid


def intent(side, iid):
    inst = side.dispatcher.load("intent_lock", iid)
    return inst.state, inst.data.get("result"), inst.data.get("failure")


def rebalances(side):
    return [p for m, p in side.lightning.companion_calls if m == "revenue-rebalance"]


def test_rebalance_runs_revenue_rebalance_once_off_the_worker(side, clock):
    iid = run(side, clock)
    assert intent(side, iid)[0] == "executing"       # the call is on the pool
    side.settle()
    state, result, _ = intent(side, iid)
    assert state == "executed" and result["status"] == "initiated"
    assert rebalances(side) == [{"from_channel": "4x4x4", "to_channel": "1x1x1",
                                 "amount_sats": 50_000, "max_fee_sats": 123}]
    assert result["from"] == "4x4x4" and result["max_fee_sats"] == 123


def test_an_error_body_fails_the_intent_with_its_reason(tmp_path, clock):
    s = BridgeSide("b", tmp_path, clock)
    s.lightning.models["cl-revenue-ops"].sling = False
    s.bridge.start(s.ctx)
    s.settle()
    form_hive(s)
    s.lightning.add_channel(TARGET, "1x1x1")
    s.lightning.add_channel(OTHER, "2x2x2")
    s.lightning.add_channel(OTHER, "4x4x4")
    iid = run(s, clock)
    s.settle()
    state, _, failure = intent(s, iid)
    assert state == "failed" and "sling plugin not found" in failure
    clock.advance(60)
    s.tick()
    execution.on_tick(s.ctx)
    s.settle()
    assert len(rebalances(s)) == 1                   # no retry
    s.close()


def test_a_timed_out_rebalance_fails_and_is_not_repeated(side, clock):
    side.lightning.modes["cl-revenue-ops"] = "hang"
    iid = run(side, clock)
    side.settle()
    clock.advance(15)
    side.tick()
    state, _, failure = intent(side, iid)
    assert state == "failed" and "timed out; not repeated" in failure
    side.lightning.release_hung()
    side.lightning.modes["cl-revenue-ops"] = "ok"
    side.settle()
    for _ in range(3):
        clock.advance(60)
        side.tick()
        execution.on_tick(side.ctx)
        side.settle()
    assert intent(side, iid)[0] == "failed" and len(rebalances(side)) == 1


def test_with_the_breaker_open_the_rebalance_fails_at_once_without_a_call(side, clock):
    side.lightning.modes["cl-revenue-ops"] = "garbage"
    for _ in range(3):
        clock.advance(60)
        side.tick()
    side.lightning.companion_calls.clear()
    iid = run(side, clock)
    state, _, failure = intent(side, iid)
    assert state == "failed" and "circuit breaker is" in failure and rebalances(side) == []


def test_channel_open_runs_fundchannel_off_the_worker(side, clock):
    iid = run(side, clock, kind="channel_open", amount=100_000)
    assert intent(side, iid)[0] == "executing"
    side.settle()
    assert intent(side, iid)[:2] == ("executed", {"txid": "ab" * 32, "channel_id": "cc" * 32})


@pytest.mark.parametrize("channel_appears", [True, False])
def test_a_timed_out_fundchannel_is_reconciled_not_repeated(side, clock, channel_appears):
    side.lightning.modes["fundchannel"] = "hang"
    iid = run(side, clock, kind="channel_open", amount=100_000)
    side.settle()
    if channel_appears:      # it went through; only the answer is late
        side.lightning.add_channel(TARGET, "7x7x7")
        side.lightning.channels[-1]["channel_id"] = "dd" * 32
    clock.advance(15)
    side.tick()
    state, result, failure = intent(side, iid)
    if channel_appears:
        assert state == "executed" and result == {"reconciled": True}
    else:
        assert state == "failed" and "timed out and its effect is not there" in failure
    side.lightning.release_hung()
    side.settle()
    clock.advance(60)
    side.tick()
    execution.on_tick(side.ctx)
    side.settle()
    assert len(side.lightning.fundings) == 1 and intent(side, iid)[0] == state
