"""The single worker queue: serial execution, faults contained, ticks, clean stop."""
import threading

import pytest
from pyln.client import RpcException
from structlog.testing import capture_logs

from handlers.frame.engine import Engine


@pytest.fixture
def engine(db, clock, config):
    e = Engine(db, clock, lambda: config, lightning=None)
    e.start()
    yield e
    e.stop()


def test_items_run_one_at_a_time_on_one_thread(engine):
    seen, active, overlaps = [], [0], []

    def item(i):
        active[0] += 1
        overlaps.append(active[0])
        seen.append((i, threading.current_thread().name))
        active[0] -= 1
        return i
    futures = [engine.submit(lambda i=i: item(i)) for i in range(50)]
    assert [f.result(timeout=5) for f in futures] == list(range(50))
    assert [i for i, _ in seen] == list(range(50))
    assert {name for _, name in seen} == {"hive-worker"} and max(overlaps) == 1


def test_a_failing_item_is_reported_and_the_worker_goes_on(engine):
    with capture_logs() as logs:
        bad = engine.submit(lambda: 1 / 0)
        refused = engine.submit(lambda: (_ for _ in ()).throw(RpcException("name: bad", -32602)))
        good = engine.submit(lambda: "fine")
        assert good.result(timeout=5) == "fine"
    with pytest.raises(ZeroDivisionError):
        bad.result()
    with pytest.raises(RpcException):
        refused.result()
    levels = {e["event"]: e["log_level"] for e in logs}
    assert levels == {"engine.item_failed": "error", "engine.command_refused": "info"}


def test_tick_fires_due_deadlines(engine, clock, config):
    engine.submit(lambda: engine.dispatcher.create(
        "circuit_breaker", "b", state="closed")).result(timeout=5)
    out = engine.submit(lambda: engine.dispatcher.fire(
        "circuit_breaker", "b", "failure", failures=9, threshold=1)).result(timeout=5)
    assert out.dest == "open"
    clock.advance(config.breaker_reset_seconds)
    engine.submit(engine.tick).result(timeout=5)
    assert engine.dispatcher.load("circuit_breaker", "b").state == "half_open"


def test_stop_is_prompt_and_refuses_later_work(db, clock, config):
    e = Engine(db, clock, lambda: config, lightning=None)
    e.start()
    assert e.stop(timeout=0.8) is True
    late = e.submit(lambda: "never")
    with pytest.raises(RuntimeError, match="shutting down"):
        late.result(timeout=1)


def test_tick_prunes_old_sent_messages(engine, db, clock):
    from handlers.frame.engine import OUTBOX_KEEP_SECONDS
    from storage import outbox
    with db.transaction() as conn:
        old = outbox.add(conn, peer_id="02aa", msg_hex="8001", now=clock.now())
        outbox.mark_sent(conn, old, clock.now())
        unsent = outbox.add(conn, peer_id="02aa", msg_hex="8003", now=clock.now())
        # still waiting for a retry (this engine has no lightningd to send through)
        outbox.mark_failed(conn, unsent, "Peer is not connected", clock.now(), retry_at=1e12)
    clock.advance(OUTBOX_KEEP_SECONDS + 1)
    engine.submit(engine.tick).result(timeout=5)
    assert outbox.total_count(db.conn()) == 1          # the old sent one is gone
    assert outbox.pending_count(db.conn()) == 1        # the unsent one stays
