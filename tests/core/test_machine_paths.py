"""Each machine's paths through the dispatcher on real SQLite: persisted, logged once per
transition, continued after the database is closed and reopened, deadlines driven by a
manual clock (no sleeps)."""
import pytest
from structlog.testing import capture_logs

from handlers.frame.dispatch import Dispatcher, Send
from storage import outbox, transition_log
from storage.db import Database

PEER = "02" + "ab" * 32
OTHER = "03" + "cd" * 32
LOCK_END = 2**40          # an intent's lock window that has not passed


def transitions(logs):
    return [(e["machine"], e["trigger"], e["source"], e["dest"])
            for e in logs if e["event"] == "fsm.transition"]


def reopen(config, clock):
    db = Database(config.db_path)
    db.migrate()
    return db, Dispatcher(db, clock, lambda: config)


def test_handshake_joiner_happy_path_logs_each_step(dispatcher):
    with capture_logs() as logs:
        dispatcher.create("handshake_joiner", "s1", data={"peer_id": PEER}, domain={"peer_id": PEER}, peer_id=PEER)
        assert dispatcher.fire("handshake_joiner", "s1", "challenge_valid", peer_id=PEER).ok
        assert dispatcher.fire("handshake_joiner", "s1", "welcome_valid", peer_id=PEER).ok
    assert transitions(logs) == [
        ("handshake_joiner", "create", None, "hello_sent"),
        ("handshake_joiner", "challenge_valid", "hello_sent", "attest_sent"),
        ("handshake_joiner", "welcome_valid", "attest_sent", "joined"),
    ]
    assert all(e["peer_id"] == PEER for e in logs)
    inst = dispatcher.load("handshake_joiner", "s1")
    assert inst.state == "joined" and inst.deadline is None


def test_a_message_from_another_peer_moves_no_session(dispatcher):
    dispatcher.create("handshake_admin", "s1", data={"peer_id": PEER}, domain={"peer_id": PEER})
    with capture_logs() as logs:
        out = dispatcher.fire("handshake_admin", "s1", "attest_valid", peer_id=OTHER)
    assert not out.ok and out.refused == "guard"
    assert dispatcher.load("handshake_admin", "s1").state == "challenge_sent"
    assert [e["event"] for e in logs] == ["fsm.trigger_refused"]
    assert logs[0]["reason"] == "guard" and logs[0]["peer_id"] == OTHER


def test_welcome_before_our_attest_is_refused(dispatcher, db):
    dispatcher.create("handshake_joiner", "s1", data={"peer_id": PEER}, domain={"peer_id": PEER})
    out = dispatcher.fire("handshake_joiner", "s1", "welcome_valid", peer_id=PEER)
    assert out.refused == "illegal"
    assert dispatcher.load("handshake_joiner", "s1").state == "hello_sent"
    # a refusal leaves no trace in the SQLite log: only the creation is there
    assert [r["trigger"] for r in transition_log.for_instance(db.conn(), "handshake_joiner",
                                                               "s1")] == ["create"]


def test_handshake_expires_only_at_its_deadline(dispatcher, clock, config):
    dispatcher.create("handshake_admin", "s1", data={"peer_id": PEER}, domain={"peer_id": PEER})
    clock.advance(config.handshake_timeout_seconds - 1)
    assert dispatcher.fire_due() == []
    clock.advance(1)
    [out] = dispatcher.fire_due()
    assert (out.trigger, out.dest) == ("expire", "expired")
    assert dispatcher.fire_due() == []         # terminal: no deadline left


def test_member_tier_paths(dispatcher):
    dispatcher.create("member_tier", PEER)
    assert not dispatcher.fire("member_tier", PEER, "promote", votes=1, eligible=3).ok
    assert dispatcher.fire("member_tier", PEER, "promote", votes=2, eligible=3).ok
    assert dispatcher.fire("member_tier", PEER, "ban", votes=2, eligible=3).ok
    assert dispatcher.fire("member_tier", PEER, "unban", votes=2, eligible=3).dest == "left"
    assert dispatcher.fire("member_tier", PEER, "readmit").dest == "neophyte"
    dispatcher.create("member_tier", OTHER, state="admin")
    assert dispatcher.fire("member_tier", OTHER, "ban", votes=9, eligible=9).refused == "illegal"


def test_local_intent_commits_after_hold_then_executes(dispatcher, clock, config):
    dispatcher.create("intent_lock", "i1", data={"role": "local", "expires_at": LOCK_END},
                      domain={"intent_type": "channel_open", "target": OTHER,
                              "initiator": PEER, "intent_id": "i1", "announced_at": 0,
                              "expires_at": LOCK_END})
    clock.advance(config.intent_hold_seconds - 1)
    assert dispatcher.fire_due() == []
    clock.advance(1)
    [out] = dispatcher.fire_due()
    assert out.dest == "committed"
    assert dispatcher.fire("intent_lock", "i1", "start_execution").dest == "executing"
    assert dispatcher.fire("intent_lock", "i1", "start_execution").refused == "illegal"
    assert dispatcher.fire("intent_lock", "i1", "execution_succeeded").dest == "executed"


def test_remote_intent_expires_counted_from_its_announce(dispatcher, clock, config):
    created = clock.now()
    dispatcher.create("intent_lock", "r1", data={"role": "remote", "expires_at": LOCK_END},
                      domain={"intent_type": "rebalance", "target": OTHER, "initiator": OTHER,
                              "intent_id": "r1", "announced_at": 0, "expires_at": LOCK_END})
    clock.advance(config.intent_hold_seconds)
    [held] = dispatcher.fire_due()
    assert held.dest == "committed"
    assert dispatcher.fire("intent_lock", "r1", "start_execution").refused == "guard"
    inst = dispatcher.load("intent_lock", "r1")
    assert inst.deadline == created + config.intent_expire_seconds
    clock.advance(config.intent_expire_seconds - config.intent_hold_seconds)
    [expired] = dispatcher.fire_due()
    assert expired.dest == "expired"


LIMITS = {"amount_sat": 10, "spent_sat": 0, "count": 0, "budget_sat": 10,
          "max_action_sat": 10, "max_actions": 1}


@pytest.mark.parametrize("mode,after_submit,decide", [
    ("autonomous", "approved", None), ("advisor", "awaiting_approval", "approve"),
    ("oracle", "consulting_oracle", "oracle_approved")])
def test_governance_mode_decides_the_path(dispatcher, mode, after_submit, decide):
    dispatcher.create("pending_action", "a1",
                      domain={"action_type": "channel_open", "target": OTHER})
    assert dispatcher.fire("pending_action", "a1", "submit", mode=mode,
                           **LIMITS).dest == after_submit
    if decide is not None:
        assert dispatcher.fire("pending_action", "a1", decide).dest == "approved"
    assert dispatcher.fire("pending_action", "a1", "start_execution").dest == "executing"
    assert dispatcher.fire("pending_action", "a1", "execution_failed").dest == "failed"


def test_unapproved_action_expires(dispatcher, clock, config):
    dispatcher.create("pending_action", "a1", domain={"action_type": "ban", "target": OTHER})
    dispatcher.fire("pending_action", "a1", "submit", mode="advisor")
    clock.advance(config.pending_action_expire_seconds)
    [out] = dispatcher.fire_due()
    assert out.dest == "expired"
    assert dispatcher.fire("pending_action", "a1", "approve").refused == "illegal"


def test_circuit_breaker_opens_cools_down_and_probes(dispatcher, clock, config):
    dispatcher.create("circuit_breaker", "revenue-ops", data={"failures": 0})
    threshold = config.breaker_failure_threshold
    for n in range(1, threshold):
        out = dispatcher.fire("circuit_breaker", "revenue-ops", "failure", failures=n,
                              threshold=threshold, data_update={"failures": n})
        assert out.ok and out.internal and out.dest == "closed"
    out = dispatcher.fire("circuit_breaker", "revenue-ops", "failure", failures=threshold,
                          threshold=threshold)
    assert out.dest == "open"
    clock.advance(config.breaker_reset_seconds)
    [probe] = dispatcher.fire_due()
    assert probe.dest == "half_open"
    assert dispatcher.fire("circuit_breaker", "revenue-ops", "failure").dest == "open"


def test_state_survives_closing_and_reopening_the_database(db, dispatcher, clock, config):
    dispatcher.create("intent_lock", "i1", data={"role": "local", "expires_at": LOCK_END},
                      domain={"intent_type": "channel_open", "target": OTHER,
                              "initiator": PEER, "intent_id": "i1", "announced_at": 0,
                              "expires_at": LOCK_END})
    clock.advance(config.intent_hold_seconds)
    dispatcher.fire_due()
    db.close()
    db2, d2 = reopen(config, clock)
    try:
        inst = d2.load("intent_lock", "i1")
        assert inst.state == "committed" and inst.data == {"role": "local", "expires_at": LOCK_END}
        assert d2.fire("intent_lock", "i1", "start_execution").dest == "executing"
        assert [r["dest"] for r in transition_log.for_instance(db2.conn(), "intent_lock", "i1")] \
            == ["pending", "committed", "executing"]
    finally:
        db2.close()


def test_a_pending_deadline_fires_after_a_restart(db, dispatcher, clock, config):
    dispatcher.create("handshake_joiner", "s1", data={"peer_id": PEER}, domain={"peer_id": PEER})
    db.close()
    clock.advance(config.handshake_timeout_seconds)
    db2, d2 = reopen(config, clock)
    try:
        [out] = d2.fire_due()
        assert out.dest == "expired"
    finally:
        db2.close()


def test_sends_are_queued_only_when_the_transition_happens(dispatcher, db):
    dispatcher.create("handshake_admin", "s1", data={"peer_id": PEER}, domain={"peer_id": PEER},
                      sends=[Send(PEER, "8001")])
    dispatcher.fire("handshake_admin", "s1", "attest_valid", peer_id=OTHER,
                    sends=[Send(OTHER, "8003")])      # refused: nothing queued
    dispatcher.fire("handshake_admin", "s1", "attest_valid", peer_id=PEER,
                    sends=[Send(PEER, "8005")])
    queued = outbox.due(db.conn(), now=float("inf"))
    assert [(r["peer_id"], r["msg_hex"]) for r in queued] == [(PEER, "8001"), (PEER, "8005")]


def test_firing_an_unknown_instance_is_refused(dispatcher):
    out = dispatcher.fire("intent_lock", "nope", "hold_elapsed")
    assert not out.ok and out.refused == "unknown_instance"
