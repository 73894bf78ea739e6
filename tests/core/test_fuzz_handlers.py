"""Fuzzing every hive message type at the handler level (the real router and handlers on
real SQLite and secp256k1): malformed, mutated valid, oversized and replayed messages never
crash a handler, never log an error, and never change state they should not (see
tests/fuzz/harness.py for what is judged). A bounded run; `make fuzz` runs a million."""
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.frame.clock import ManualClock
from handlers.intents import acks
from handlers.wire.framing import MsgType
from storage import intents as intent_store
from tests.fuzz import mutate, run
from tests.fuzz.harness import Harness


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    h = Harness(tmp_path_factory.mktemp("fuzz"), ManualClock())
    yield h
    h.close()


def test_the_corpus_holds_every_message_type(harness):
    assert {s.kind for s in harness.seeds} == set(MsgType)


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_messages_never_crash_log_errors_or_change_state(harness, data):
    src = mutate.DrawSource(data)
    seed = src.choice(harness.seeds)
    category = src.choice(mutate.CATEGORIES)
    before = harness.tally.messages
    harness.fuzz_one(src, category, seed)
    t = harness.tally
    assert t.messages == before + 1
    assert (t.crashes, t.errors, t.unexpected) == ([], [], [])


@pytest.mark.parametrize("category", mutate.CATEGORIES)
@pytest.mark.parametrize("kind", list(MsgType), ids=lambda k: k.name)
def test_every_message_type_in_every_category(harness, kind, category):
    src = mutate.RandomSource(random.Random(f"{kind.name}:{category}"))
    seeds = [s for s in harness.seeds if s.kind == kind]
    for _ in range(25):
        harness.fuzz_one(src, category, src.choice(seeds))
    t = harness.tally
    assert t.by[(kind.name, category)] >= 25
    assert (t.crashes, t.errors, t.unexpected) == ([], [], [])


def test_the_judge_catches_a_handler_that_writes_and_then_refuses(harness, monkeypatch):
    """The oracle can fail: a broken INTENT_ACK handler that records a promise before
    refusing is reported as an unexpected state change."""
    original = acks.on_intent_ack

    def broken(ctx, peer_id, msg, auth):
        with ctx.db.transaction() as conn:
            intent_store.ack(conn, "rebalance", "02" + "77" * 32, "x:y", 0.0, 2.0**40)
        return original(ctx, peer_id, msg, auth)
    monkeypatch.setattr(acks, "on_intent_ack", broken)
    from handlers import router
    monkeypatch.setitem(router.ROUTES, MsgType.INTENT_ACK,
                        router.Route(broken, "intent", router.ROUTES[MsgType.INTENT_ACK].schema))
    seed = next(s for s in harness.seeds if s.kind == MsgType.INTENT_ACK)
    unexpected = len(harness.tally.unexpected)
    harness.deliver(seed.sender, harness.by_id[seed.receiver], seed.msg_hex,
                    ("INTENT_ACK", "replayed"))
    assert harness.tally.unexpected[unexpected:][0][1] == "refused, yet state changed"
    harness.tally.unexpected[unexpected:] = []


def test_make_fuzz_adds_up_its_worker_processes():
    """`make fuzz` splits the handler level over processes: every share is counted."""
    out = []
    assert run.handler_level(30, 0, out.append, workers=2)
    assert out[0].startswith("handler level: 30 messages in ")
    assert "2 worker processes" in out[0]
    assert out[1] == "  crashes 0, error logs 0, unexpected state changes 0\n"
