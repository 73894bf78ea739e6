"""What a peer's intent messages may do: an outranked rival can still commit, an intent is
(initiator, id), what one member may make us record, and commits signed by their
initiator; and the lock-holding states are the table's, on real SQLite and signatures."""
import pytest
from pyln.client import RpcException
from structlog.testing import capture_logs

from handlers.intents import execution
from handlers.intents import locks as intents
from handlers.wire import signing
from handlers.intents.locks import INTAKE_WINDOW
from handlers.wire.framing import MsgType, encode
from intent_sides import (TARGET, abort_msg, announce, make_fleet, ordered,  # noqa: F401
                          refusals, row, signed_intent, state, tick)
from machines import SPECS
from storage import hive as hive_store
from storage import intents as store
from storage import machine_rows, transition_log

# These tests read why each message was refused from the log.
pytestmark = pytest.mark.usefixtures("every_refusal_logged")


# -- an outranked rival may still commit ----------------------------------------------------
def test_a_rival_we_outranked_is_recorded_committed_when_its_owner_commits(hold_only, make_fleet, clock):
    """Our INTENT was lost: the rival we beat on keys commits and executes. Its commit
    notice makes us yield, and the target must show as held by it, not free."""
    low, high = ordered(make_fleet(["a", "b"]))
    theirs = announce(high)
    [first] = high.outgoing(low)
    clock.advance(1)
    ours = announce(low)
    low.outgoing(high)                           # ours is lost on the way
    low.receive(high, first)                     # we win on keys
    assert state(low, ours) == "pending" and state(low, theirs) == "outranked"
    clock.advance(high.config.intent_hold_seconds)
    tick(high)                                   # high heard nothing: commits, executes
    for msg in high.outgoing(low):
        low.receive(high, msg)
    assert state(low, ours) == "aborted" and state(high, theirs) == "executed"
    assert state(low, theirs) == "committed"
    [entry] = [r for r in intents.listing(low.ctx)["intents"]
               if r["initiator"] == high.node_id]
    assert entry["state"] == "committed"
    with pytest.raises(RpcException, match="target: held by"):
        announce(low)


def test_an_outranked_rival_expires_like_a_committed_one(hold_only, make_fleet, clock):
    low, high = ordered(make_fleet(["a", "b"]))
    theirs = announce(high)
    [first] = high.outgoing(low)
    ours = announce(low)
    low.outgoing(high)
    low.receive(high, first)
    assert state(low, theirs) == "outranked"
    clock.advance(low.config.intent_hold_seconds)
    tick(low)
    assert state(low, theirs) == "outranked" and state(low, ours) == "executed"
    clock.advance(low.config.intent_expire_seconds - low.config.intent_hold_seconds)
    tick(low)
    assert state(low, theirs) == "expired"


# -- an intent is (initiator, id) -----------------------------------------------------------
def test_an_intent_id_copied_by_another_member_does_not_squat_the_original(make_fleet):
    """B sees C's INTENT first and announces its own under the same id at A, before C's
    reaches A: A must still take C's intent, its abort, and refuse C's target."""
    a, b, c = make_fleet(["a", "b", "c"])
    hive_id = hive_store.get_meta(a.db.conn())["hive_id"]
    intent_id = intents.announce(c.ctx, "channel_open", TARGET, 100_000)["intent_id"]
    to_a = c.outgoing(a)                         # on its way, slowly
    for msg in c.outgoing(b):
        b.receive(c, msg)
    squat = signed_intent(b, hive_id, intent_id=intent_id, target="02" + "66" * 32)
    a.receive(b, encode(MsgType.INTENT, squat))
    with capture_logs() as logs:
        for msg in to_a:
            a.receive(c, msg)
    assert refusals(logs) == []
    assert row(a, c, intent_id)["state"] == "pending"
    assert row(a, b, intent_id)["state"] == "pending"
    with pytest.raises(RpcException, match="target: held by"):
        announce(a)                              # C's target is held
    a.receive(c, abort_msg(c, hive_id, intent_id, a.ctx.now()))
    assert row(a, c, intent_id)["state"] == "aborted"
    assert row(a, b, intent_id)["state"] == "pending"   # B's is B's own


# -- what one member may make us record -----------------------------------------------------
def test_intents_that_end_at_once_still_count_against_the_intake_bound(make_fleet):
    """Announced then aborted at once, over and over: each would write rows and log
    entries. Past the bound, nothing more is recorded and no signature is checked."""
    a, b = make_fleet(["a", "b"])
    hive_id = hive_store.get_meta(a.db.conn())["hive_id"]
    bound = intents.MAX_INTENTS_PER_WINDOW
    with capture_logs() as logs:
        for i in range(bound + 10):
            good = signed_intent(b, hive_id, target="02" + "%064x" % (i + 1))
            a.receive(b, encode(MsgType.INTENT, good))
            a.receive(b, abort_msg(b, hive_id, good["intent"]["intent_id"], a.ctx.now()))
    assert refusals(logs)[-20:] == ["too many intents from this initiator",
                                    "no such intent"] * 10
    rows = store.listing(a.db.conn())
    assert len(rows) == bound and {r["state"] for r in rows} == {"aborted"}
    assert len(transition_log.recent(a.db.conn(), limit=10_000)) < 2 * bound + 50
    a.lightning.calls.clear()
    a.receive(b, encode(MsgType.INTENT, signed_intent(b, hive_id, target="02" + "ee" * 32)))
    assert "checkmessage" not in a.lightning.calls      # refused before signature work


# -- a commit is signed by its initiator ---------------------------------------------------
def test_a_commit_claim_without_the_initiators_signature_makes_nobody_yield(make_fleet):
    low, mid, high = ordered(make_fleet(["a", "b", "c"]))
    hive_id = hive_store.get_meta(low.db.conn())["hive_id"]
    ours = announce(low)
    low.outgoing(high)
    claim = signed_intent(high, hive_id)               # same target, higher key: it loses...
    iid = claim["intent"]["intent_id"]
    commit = {"intent_id": iid, "initiator": high.node_id,
              "committed_at": claim["intent"]["created_at"] + 60}
    forged = {**commit, "sig": signing.sign(mid.lightning, hive_id, "INTENT_COMMIT", commit)}
    with capture_logs() as logs:
        # ... unless it is committed; an unsigned flag and a forged record say so
        low.receive(high, encode(MsgType.INTENT, {**claim, "committed": True}))
        assert state(low, ours) == "pending"
        low.receive(high, encode(MsgType.INTENT, {**claim, "commit": forged}))
    assert state(low, ours) == "pending"
    assert state(low, f"{high.node_id}:{iid}") == "outranked"
    assert refusals(logs) == ["commit not signed by its initiator"]
    other = {**commit, "intent_id": "cd" * 16}
    early = {**commit, "committed_at": commit["committed_at"] - 1}
    with capture_logs() as logs:
        for bad in (other, early):
            bad = {**bad, "sig": signing.sign(high.lightning, hive_id, "INTENT_COMMIT", bad)}
            low.receive(high, encode(MsgType.INTENT, {**claim, "commit": bad}))
    assert refusals(logs) == ["commit of another intent",
                              "commit time outside its hold's end and now"]
    assert state(low, ours) == "pending"
    genuine = {**commit, "sig": signing.sign(high.lightning, hive_id, "INTENT_COMMIT", commit)}
    low.receive(high, encode(MsgType.INTENT, {**claim, "commit": genuine}))
    assert state(low, ours) == "aborted"         # the initiator's own commit: we yield
    assert state(low, f"{high.node_id}:{iid}") == "committed"


# -- state groupings come from the machine's table ----------------------------------------
def test_every_state_the_table_says_holds_the_lock_holds_the_target(make_fleet, clock):
    a, = make_fleet(["a"])
    spec = SPECS["intent_lock"]
    holds = spec.groups["holds_lock"]
    assert set(holds) == set(spec.states) - set(spec.terminal)
    peer = "03" + "77" * 32
    now = clock.now()
    for i, st in enumerate(spec.states):     # a peer's intent in each state, window over
        target = "02" + "%064x" % (i + 100)
        with a.db.transaction() as conn:
            machine_rows.insert(conn, "intent_lock", f"{peer}:{i:032x}", {
                "state": st, "deadline": None, "deadline_trigger": None, "created_at": now,
                "state_since": now, "version": 0, "data": {"role": "remote"}},
                {"intent_type": "channel_open", "target": target, "initiator": peer,
                 "intent_id": f"{i:032x}", "announced_at": now, "expires_at": 0})
        if st in holds:
            with pytest.raises(RpcException, match="target: held by"):
                announce(a, target=target)
        else:
            announce(a, target=target)
    clock.advance(max(intents.CLEANUP_AFTER, INTAKE_WINDOW + intents.FUTURE_SKEW) + 1)
    execution.on_tick(a.ctx)                   # cleanup removes exactly the finished ones
    left = {r["state"] for r in store.listing(a.db.conn()) if r["initiator"] == peer}
    assert left == set(holds)
