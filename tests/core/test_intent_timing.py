"""Intent-lock timing: nothing commits or executes past its lock window, and every node
holds and expires an intent by the hold and expiry it announced, on real SQLite and real
signatures."""
import dataclasses

import pytest
from pyln.client import RpcException
from structlog.testing import capture_logs

from handlers.intents import execution
from handlers.membership import handshake
from handlers.membership import members as membership
from handlers.wire.framing import MsgType, encode
from hive_sides import Side, pump
from intent_sides import (announce, funded, make_fleet, ordered, refusals, settle, signed_intent,  # noqa: F401
                          state, tick)
from storage import hive as hive_store
from storage import intents as store


# -- the lock window: nothing commits or executes after its expiry --------------------------
def test_an_intent_that_expired_during_downtime_never_executes(hold_only, make_fleet, clock):
    """A is down longer than the expiry; B's copy expires and B takes the target. A's
    first tick back must not commit and execute its own stale intent."""
    a, b = make_fleet(["a", "b"])
    ours = announce(a)
    pump(a, b)                                   # B records A's intent
    expire = a.config.intent_expire_seconds
    for _ in range(expire // 30 + 1):            # A is down: no ticks, messages dropped
        clock.advance(30)
        tick(b)
        b.outgoing(a)
    assert state(b, ours) == "expired"
    theirs = announce(b)                         # the target is free again for B
    b.outgoing(a)
    clock.advance(b.config.intent_hold_seconds)
    tick(b)
    b.outgoing(a)
    assert state(b, theirs) == "executed"
    tick(a)                                      # A is back
    assert state(a, ours) == "expired"
    assert funded(a) == 0
    assert a.outgoing(b) == []                   # no commit notice for a stale intent


def test_a_committed_intent_past_its_lock_window_does_not_start(make_fleet, clock):
    a, b = make_fleet(["a", "b"])
    ours = announce(a)
    pump(a, b)
    clock.advance(a.config.intent_hold_seconds)
    a.dispatcher.fire_due()
    assert state(a, ours) == "committed"         # ... and A stops before executing it
    clock.advance(a.config.intent_expire_seconds)
    execution.on_tick(a.ctx)                       # a tick whose deadlines were not fired yet
    assert state(a, ours) != "executing" and state(a, ours) != "executed"
    assert funded(a) == 0
    assert a.outgoing(b) == []
    a.dispatcher.fire_due()
    assert state(a, ours) == "expired"


# -- the lock's timing is the intent's own, on every node -----------------------------------
def test_peers_judge_an_intent_by_the_timing_it_announced(hold_only, make_fleet, tmp_path, clock):
    """One operator's short hold and expiry must not shorten the lock others announce."""
    a, = make_fleet(["a"])
    hasty = Side("hasty", tmp_path, clock, **{"hive-intent-hold-seconds": 5,
                                              "hive-intent-expire-seconds": 10})
    try:
        ticket = membership.invite(a.ctx, None, None, None)["ticket"]
        handshake.start_join(hasty.ctx, ticket, None)
        pump(a, hasty)
        a.lightning.connected = {hasty.node_id}
        hasty.lightning.connected = {a.node_id}
        ours = announce(a)                       # hold 60, expiry 600
        pump(a, hasty)
        clock.advance(11)
        tick(hasty)
        assert state(hasty, ours) == "pending"   # not committed after 5 s, nor expired
        with pytest.raises(RpcException, match="target: held by"):
            announce(hasty)
        clock.advance(a.config.intent_hold_seconds - 11)
        tick(hasty)
        assert state(hasty, ours) == "committed"
        clock.advance(a.config.intent_expire_seconds - a.config.intent_hold_seconds - 1)
        tick(hasty)
        assert state(hasty, ours) == "committed"
        clock.advance(1)
        tick(hasty)
        assert state(hasty, ours) == "expired"
        # ... and hasty's own intent carries its own timing to a
        mine = announce(hasty, target="02" + "44" * 32)
        pump(a, hasty)
        clock.advance(5)
        tick(a)
        assert state(a, mine) == "committed"
        clock.advance(5)
        tick(a)
        assert state(a, mine) == "expired"
    finally:
        hasty.close()


@pytest.mark.parametrize("timing,reason", [
    ({"hold_seconds": 4, "expire_seconds": 600}, "malformed: intent: hold_seconds"),
    ({"hold_seconds": 60, "expire_seconds": 86401}, "malformed: intent: expire_seconds"),
    ({"hold_seconds": 600, "expire_seconds": 600}, "expire_seconds must exceed hold_seconds"),
])
def test_an_intent_with_timing_outside_the_bounds_is_refused(make_fleet, timing, reason):
    a, b = make_fleet(["a", "b"])
    hive_id = hive_store.get_meta(a.db.conn())["hive_id"]
    with capture_logs() as logs:
        a.receive(b, encode(MsgType.INTENT, signed_intent(b, hive_id, **timing)))
    [why] = refusals(logs)
    assert why.startswith(reason)
    assert store.listing(a.db.conn()) == []


def test_a_later_setconfig_does_not_shorten_an_executed_intents_lock(make_fleet, clock):
    a, b = make_fleet(["a", "b"])
    ours = announce(a)
    pump(a, b)
    settle([a, b], clock, a.config.intent_hold_seconds)
    assert state(a, ours) == "executed"
    a.config = dataclasses.replace(a.config, intent_hold_seconds=5, intent_expire_seconds=10)
    clock.advance(60)
    with pytest.raises(RpcException, match="target: held by our intent .* \\(executed\\)"):
        announce(a)
    execution.on_tick(a.ctx)                       # cleanup keeps it while it holds
    assert state(a, ours) == "executed"


# -- a long hold's commit notice ------------------------------------------------------
def test_the_commit_notice_of_an_intent_with_the_longest_hold_is_taken(hold_only, make_fleet, clock):
    """Sent when a 3600 s hold ends, it arrives more than an hour after the announce."""
    low, high = ordered(make_fleet(["a", "b"]))
    for s in (low, high):
        s.config = dataclasses.replace(s.config, intent_hold_seconds=3600,
                                       intent_expire_seconds=86400)
    theirs = announce(high)
    [first] = high.outgoing(low)
    clock.advance(1)
    ours = announce(low)
    low.outgoing(high)                           # lost: high never hears of ours
    low.receive(high, first)
    assert state(low, theirs) == "outranked"
    clock.advance(3599)
    tick(high)                                   # high commits
    clock.advance(120)                           # its notice is slow
    with capture_logs() as logs:
        for msg in high.outgoing(low):
            low.receive(high, msg)
    assert refusals(logs) == []
    assert state(low, theirs) == "committed" and state(low, ours) == "aborted"
