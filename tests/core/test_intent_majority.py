"""The majority-acknowledged lock for channel opens and rebalances: a partitioned minority
cannot commit, at most one of two rivals executes whatever the timing, a member's word is
given once per target and survives a restart, and bad acknowledgements change nothing.
On real SQLite and real signatures; a partition is messages left in the outbox."""
import pytest
from pyln.client import RpcException
from structlog.testing import capture_logs

from handlers.intents import execution
from handlers.intents import locks as intents
from handlers.intents.acks import FUTURE_SKEW
from handlers.wire import signing
from handlers.wire.framing import MsgType, encode
from hive_sides import pump
from intent_sides import TARGET, bare, make_fleet, ordered, refusals, state  # noqa: F401
from machines.guards import majority_quorum
from storage import hive as hive_store
from storage import intents as store
from storage import transition_log
from storage.db import Database

pytestmark = pytest.mark.usefixtures("every_refusal_logged")


def open_intent(side, target=TARGET):
    return intents.announce(side.ctx, "channel_open", target, 100_000)["lock_id"]


def tick(*sides):
    for s in sides:
        s.dispatcher.fire_due()
        execution.on_tick(s.ctx)


def started(side, lock_id) -> bool:
    """Did this node ever start executing the intent (fundchannel attempted)?"""
    return any(t["trigger"] == "start_execution"
               for t in transition_log.for_instance(side.db.conn(), "intent_lock", lock_id))


def ack_body(member, hive_id, lock_id, **over):
    initiator, intent_id = lock_id.split(":")
    ack = {"intent_id": intent_id, "initiator": initiator, "intent_type": "channel_open",
           "target": TARGET, "member": member.node_id, "acked_at": member.ctx.now(), **over}
    return encode(MsgType.INTENT_ACK, {
        "ack": ack, "sig": signing.sign(member.lightning, hive_id, "INTENT_ACK", ack)})


def test_the_quorum_is_the_one_majority_formula():
    assert [majority_quorum(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 2, 3, 3]


def test_two_partitioned_members_with_no_majority_each_cannot_both_execute(make_fleet, clock):
    """Four members cut in two halves; one member of each half wants the same channel.
    Each half has 2 of 4 (a majority is 3): neither commits, and each gives up at expiry."""
    a, b, c, d = make_fleet(["a", "b", "c", "d"])
    left, right = (a, b), (c, d)
    ours, theirs = open_intent(a), open_intent(c)
    pump(*left)
    pump(*right)                  # inside each half every message arrives
    cfg = a.config
    clock.advance(cfg.intent_hold_seconds)
    tick(a, b, c, d)
    pump(*left)
    pump(*right)
    assert state(a, ours) == "gathering" and state(c, theirs) == "gathering"
    assert intents.listing(a.ctx)["intents"][0]["acks"] == 2      # a and b, of 3 needed
    clock.advance(cfg.intent_expire_seconds - cfg.intent_hold_seconds)
    tick(a, b, c, d)
    assert state(a, ours) == "aborted" and state(c, theirs) == "aborted"
    assert not started(a, ours) and not started(c, theirs)
    assert "fundchannel" not in a.lightning.calls + c.lightning.calls


def test_the_majority_side_of_a_partition_still_acts(make_fleet, clock):
    a, b, c, d = make_fleet(["a", "b", "c", "d"])
    ours, theirs = open_intent(a), open_intent(d)
    pump(a, b, c)                 # three of four: a majority; d is alone
    clock.advance(a.config.intent_hold_seconds)
    tick(a, b, c, d)
    pump(a, b, c)
    assert started(a, ours) and not started(d, theirs)
    assert state(d, theirs) == "gathering"


def test_a_round_trip_longer_than_the_hold_no_longer_lets_both_execute(make_fleet, clock):
    """The seed's limit, replayed on a channel open: every message arrives, each after the
    other's hold. The hold alone let both execute; the acknowledgements do not."""
    low, high = ordered(make_fleet(["a", "b"]))
    hold = low.config.intent_hold_seconds
    theirs = open_intent(high)
    to_low = high.outgoing(low)
    clock.advance(25)
    ours = open_intent(low)
    to_high = low.outgoing(high)
    clock.advance(15)
    for msg in to_low:
        low.receive(high, msg)       # low's own intent holds its word: no ack for high
    clock.advance(hold - 40)
    tick(high)                       # high heard nothing, but it has 1 of 2: no commit
    assert state(high, theirs) == "gathering" and not started(high, theirs)
    for msg in to_high + low.outgoing(high):
        high.receive(low, msg)       # low's intent wins the tie-break: high yields...
    assert state(high, theirs) == "aborted"
    clock.advance(25)
    tick(low)
    for msg in high.outgoing(low):   # ... and gives its word to low's intent
        low.receive(high, msg)
    tick(low)
    assert started(low, ours) and not started(high, theirs)


def test_the_tie_break_winner_gathers_the_acknowledgements(make_fleet, clock):
    sides = make_fleet(["a", "b", "c"])
    low, mid, high = ordered(sides)
    theirs = open_intent(high)
    for msg in high.outgoing(mid):
        mid.receive(high, msg)       # mid hears high first and gives it its word
    assert store.acked(mid.db.conn(), "channel_open", TARGET, clock.now()) == theirs
    ours = open_intent(low)
    pump(*sides)
    clock.advance(low.config.intent_hold_seconds)
    tick(*sides)
    pump(*sides)
    tick(*sides)
    assert started(low, ours) and not started(high, theirs)
    assert state(high, theirs) == "aborted"


def test_a_member_gives_its_word_once_per_target_and_keeps_it_across_a_restart(
        make_fleet, clock):
    a, b, c = make_fleet(["a", "b", "c"])
    first = open_intent(b)
    for msg in b.outgoing(c):
        c.receive(b, msg)
    acks_to_b = c.outgoing(b)
    assert len(acks_to_b) == 1
    path = c.config.db_path
    c.db.close()                      # a crash: only what is on disk remains
    reopened = Database(path)
    assert store.acked(reopened.conn(), "channel_open", TARGET, clock.now()) == first
    reopened.close()
    c.db = Database(path)
    c.dispatcher.db = c.ctx.db = c.db
    second = open_intent(a)           # a rival on the same target reaches c after restart
    for msg in a.outgoing(c):
        c.receive(a, msg)
    assert c.outgoing(a) == []        # no second acknowledgement
    assert state(c, second) == "pending"
    # Past the first intent's window its copies are gone, but c's word binds for the
    # clock skew peers may have: c may not announce its own on that target yet.
    clock.advance(c.config.intent_expire_seconds)
    tick(c)
    assert state(c, first) == "expired"
    with pytest.raises(RpcException, match="this node acknowledged intent " + first):
        open_intent(c)
    clock.advance(FUTURE_SKEW)
    tick(c)
    assert state(c, open_intent(c)) == "pending"


def test_without_a_majority_before_expiry_the_intent_aborts(make_fleet, clock):
    a, b, c = make_fleet(["a", "b", "c"])
    ours = open_intent(a)
    a.outgoing(b), a.outgoing(c)      # both lost
    clock.advance(a.config.intent_expire_seconds - 1)
    tick(a)
    assert state(a, ours) == "gathering"
    clock.advance(1)
    tick(a)
    assert state(a, ours) == "aborted" and not started(a, ours)


def test_a_late_majority_commits_within_the_window(make_fleet, clock):
    a, b, c = make_fleet(["a", "b", "c"])
    ours = open_intent(a)
    clock.advance(a.config.intent_hold_seconds + 30)
    tick(a)
    assert state(a, ours) == "gathering"
    pump(a, b, c)                     # the acks arrive after the hold, before expiry
    assert state(a, ours) == "committed"
    tick(a)
    assert started(a, ours)


def test_bad_acknowledgements_change_nothing(make_fleet, clock):
    a, b, c = make_fleet(["a", "b", "c"])
    hive_id = hive_store.get_meta(a.db.conn())["hive_id"]
    ours = open_intent(a)
    a.outgoing(b), a.outgoing(c)
    before = a.snapshot(), a.dispatcher.load("intent_lock", ours).data
    with capture_logs() as logs:
        a.receive(c, ack_body(b, hive_id, ours))                  # b's ack, sent by c
        a.receive(b, ack_body(b, hive_id, ours, target="02" + "11" * 32))
        a.receive(b, ack_body(b, hive_id, a.node_id + ":" + "0" * 32))
        forged = ack_body(b, hive_id, ours)
        a.receive(b, encode(MsgType.INTENT_ACK, {
            "ack": {"intent_id": bare(ours), "initiator": a.node_id,
                    "intent_type": "channel_open", "target": TARGET, "member": b.node_id,
                    "acked_at": b.ctx.now()},
            "sig": signing.sign(c.lightning, hive_id, "INTENT_ACK", {"x": 1})}))
    assert refusals(logs) == ["member is not the sender", "does not match the intent",
                              "no such intent", "not signed by its member"]
    assert (a.snapshot(), a.dispatcher.load("intent_lock", ours).data) == before
    a.receive(b, forged)
    with capture_logs() as logs:
        a.receive(b, forged)                                      # replayed
    assert refusals(logs) == ["already acknowledged (replay)"]
    assert state(a, ours) == "pending"
    assert len(a.dispatcher.load("intent_lock", ours).data["acks"]) == 2
