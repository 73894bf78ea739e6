"""Peer input drained at once is applied in one transaction: one commit for the burst, a
failing item rolled back alone, nothing acted on before the commit; signature checks of
a burst of GOSSIP are asked ahead, once, and only for what would be verified anyway."""
import threading

import pytest
from structlog.testing import capture_logs

from handlers import router
from handlers.frame.effects import Prefetching
from handlers.frame.engine import Engine
from handlers.frame.workqueue import Item, WorkQueue
from handlers.wire import framing
from handlers.wire.framing import MsgType, encode
from storage import hive as hive_store
from storage import hivemap
from tests.core.hive_sides import Side, form_hive
from tests.core.hivemap_fleet import admit, signed_state


def _item(droppable):
    from concurrent.futures import Future
    return Item(lambda: None, Future(), droppable)


def test_a_batch_is_the_peer_items_in_a_row_and_a_command_ends_it():
    q = WorkQueue(100)
    items = [_item(True), _item(True), _item(False), _item(True), _item(True), _item(True)]
    for i in items:
        q.put(i)
    assert q.get_batch(64) == items[:2]
    assert q.get_batch(64) == [items[2]]             # a command runs alone
    assert q.get_batch(2) == items[3:5]              # never more than the limit
    assert q.get_batch(64) == [items[5]]


@pytest.fixture
def engine(db, clock, config):
    e = Engine(db, clock, lambda: config, lightning=None)
    yield e
    e.stop()


def _write(db, n):
    with db.transaction() as conn:
        hivemap.put_if_newer(conn, {"peer_id": f"02{n:064x}", "version": 1, "timestamp": 0},
                             "sig", 0.0)


def test_a_burst_commits_once_and_a_failing_item_is_rolled_back_alone(engine, db):
    release, held, commits = threading.Event(), threading.Event(), []

    def hold():     # on the worker: count its COMMITs (each one a sync to disk), then wait
        db.conn().set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT"
                                     else None)
        held.set()
        release.wait(10)
    engine.submit(hold)
    engine.start()
    assert held.wait(5)
    logged = []

    def fails():
        _write(db, 99)
        db.after_commit(lambda: logged.append("never"))
        raise ValueError("boom")

    def ok(n):
        _write(db, n)
        db.after_commit(lambda: logged.append(n))
        return n
    futures = [engine.submit(lambda n=n: ok(n), droppable=True) for n in range(3)]
    futures.insert(1, engine.submit(fails, droppable=True))
    with capture_logs() as logs:
        release.set()
        results = [f.exception(timeout=5) or f.result() for f in futures]
    assert results[0] == 0 and isinstance(results[1], ValueError) and results[2:] == [1, 2]
    held_ids = {e["state"]["peer_id"] for e in hivemap.all_entries(db.conn())}
    assert held_ids == {f"02{n:064x}" for n in range(3)}        # the failed write is gone
    assert logged == [0, 1, 2]                  # after the commit, never the rolled back one
    assert commits == ["COMMIT"]                # four items, one commit
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["engine.item_failed"]


def test_a_batch_whose_commit_fails_applied_nothing_and_acted_on_nothing(engine, db):
    release, held = threading.Event(), threading.Event()
    engine.submit(lambda: (held.set(), release.wait(10)))
    engine.start()
    assert held.wait(5)
    logged = []

    def writes(n):
        _write(db, n)
        db.after_commit(lambda: logged.append(n))
    futures = [engine.submit(lambda n=n: writes(n), droppable=True) for n in range(3)]

    def breaks_the_commit():
        # A deferred foreign key left dangling: SQLite refuses the COMMIT itself.
        conn = db.conn()
        conn.execute("CREATE TEMP TABLE parent (id INTEGER PRIMARY KEY)")
        conn.execute("CREATE TEMP TABLE child (id INTEGER REFERENCES parent (id) "
                     "DEFERRABLE INITIALLY DEFERRED)")
        conn.execute("INSERT INTO child VALUES (1)")
    futures.append(engine.submit(breaks_the_commit, droppable=True))
    with capture_logs() as logs:
        release.set()
        errors = [f.exception(timeout=5) for f in futures]
    assert all(e is not None for e in errors)
    assert hivemap.all_entries(db.conn()) == [] and logged == []
    assert "engine.batch_failed" in [e["event"] for e in logs]


@pytest.fixture
def pair(tmp_path, clock):
    clock.advance(1_000_000)
    a, b = Side("a", tmp_path, clock), Side("b", tmp_path, clock)
    form_hive(a, b)
    a.ctx.lightning = Prefetching(a.lightning, keep=128)
    yield a, b
    a.close()
    b.close()


def _gossip(key, hive_id, version, clock, **kw):
    return encode(MsgType.GOSSIP, signed_state(key, hive_id, version=version,
                                               timestamp=int(clock.now()), peers=2, **kw))


class _Pipelined:
    """lightningd's answers (real secp256k1, KeyOnlyLightning), and the door's many-calls
    path, which records each burst it is asked."""

    def __init__(self, inner):
        self.inner, self.bursts = inner, []

    def call(self, method, params=None):
        return self.inner.call(method, params)

    def call_many(self, method, params_list):
        self.bursts.append((method, len(params_list)))
        return [self.inner.call(method, p) for p in params_list]


def _through_the_engine(a, clock, door, messages):
    """Apply `messages` ((peer, payload) pairs) as one batch, through an engine whose
    `gather` is that of a Prefetching over `door`."""
    a.ctx.lightning = checks = Prefetching(door, keep=128)
    engine = Engine(a.db, clock, a.ctx.config, lightning=None, gather=checks.gather)
    release, held = threading.Event(), threading.Event()
    engine.submit(lambda: (held.set(), release.wait(10)))
    engine.start()
    try:
        assert held.wait(5)
        incoming = [router.Incoming(a.ctx, peer, msg) for peer, msg in messages]
        futures = [engine.submit(i.handle, droppable=True, prepare=i.prefetch)
                   for i in incoming]
        release.set()
        for f in futures:
            f.result(timeout=5)
    finally:
        engine.stop()


def test_a_bursts_signature_checks_are_asked_together_once_each(pair, clock):
    a, b = pair
    hive_id = hive_store.get_meta(a.db.conn())["hive_id"]
    keys = admit(a, (a,), 5)
    door = _Pipelined(a.lightning)
    a.lightning.calls.clear()
    _through_the_engine(a, clock, door, [(k.node_id, _gossip(k, hive_id, 1, clock))
                                         for k in keys])
    assert door.bursts == [("checkmessage", 5)]                 # one burst for the batch
    assert a.lightning.calls.count("checkmessage") == 5         # and not asked again
    assert {e["state"]["peer_id"] for e in hivemap.all_entries(a.db.conn())} \
        == {k.node_id for k in keys}


def test_the_next_batchs_questions_are_asked_while_this_batch_is_applied(
        pair, clock, monkeypatch):
    from handlers.frame import engine as engine_module
    monkeypatch.setattr(engine_module, "MAX_BATCH", 3)
    a, b = pair
    hive_id = hive_store.get_meta(a.db.conn())["hive_id"]
    keys = admit(a, (a,), 4)
    second_asked = threading.Event()

    class Door(_Pipelined):
        def call_many(self, method, params_list):
            answers = super().call_many(method, params_list)
            if len(self.bursts) == 2:
                second_asked.set()
            return answers
    door = Door(a.lightning)
    a.ctx.lightning = checks = Prefetching(door, keep=128)
    engine = Engine(a.db, clock, a.ctx.config, lightning=None, gather=checks.gather)
    release, held, waited = threading.Event(), threading.Event(), []
    engine.submit(lambda: (held.set(), release.wait(10)))
    engine.start()
    try:
        assert held.wait(5)
        # The first batch: an item that waits for the second batch's questions, and two
        # GOSSIP; the second batch: two more. Were they asked only once the first batch
        # is applied, the wait would run out.
        futures = [engine.submit(lambda: waited.append(second_asked.wait(5)), droppable=True)]
        for k in keys:
            i = router.Incoming(a.ctx, k.node_id, _gossip(k, hive_id, 1, clock))
            futures.append(engine.submit(i.handle, droppable=True, prepare=i.prefetch))
        release.set()
        for f in futures:
            f.result(timeout=10)
    finally:
        engine.stop()
    assert waited == [True]
    assert door.bursts == [("checkmessage", 2), ("checkmessage", 2)]
    assert len(hivemap.all_entries(a.db.conn())) == 4


def test_a_door_without_many_calls_is_asked_each_question_once(pair, clock):
    a, b = pair
    hive_id = hive_store.get_meta(a.db.conn())["hive_id"]
    keys = admit(a, (a,), 3)
    asked_on = []

    class OneByOne:         # lightningd's answers, without the many-calls path
        def call(self, method, params=None):
            asked_on.append((method, threading.current_thread().name))
            return a.lightning.call(method, params)
    _through_the_engine(a, clock, OneByOne(), [(k.node_id, _gossip(k, hive_id, 1, clock))
                                               for k in keys])
    checks = [thread for method, thread in asked_on if method == "checkmessage"]
    assert len(checks) == 3                                     # once each,
    assert all(t.startswith("hive-ask") for t in checks)        # all asked ahead
    assert len(hivemap.all_entries(a.db.conn())) == 3


class _BurstsFail(_Pipelined):
    def __init__(self, inner, error):
        super().__init__(inner)
        self.error = error

    def call_many(self, method, params_list):
        raise self.error


@pytest.mark.parametrize("error", [OSError("connection refused"), ValueError("a fault")])
def test_a_burst_whose_asking_failed_is_applied_each_asking_itself(pair, clock, error):
    a, b = pair
    hive_id = hive_store.get_meta(a.db.conn())["hive_id"]
    keys = admit(a, (a,), 3)
    a.lightning.calls.clear()
    with capture_logs() as logs:
        _through_the_engine(a, clock, _BurstsFail(a.lightning, error),
                            [(k.node_id, _gossip(k, hive_id, 1, clock)) for k in keys])
    assert a.lightning.calls.count("checkmessage") == 3         # each handler asked
    assert len(hivemap.all_entries(a.db.conn())) == 3
    assert [e["log_level"] for e in logs if e["event"] == "engine.prepare_failed"] \
        == ["debug" if isinstance(error, OSError) else "warning"]


def test_nothing_is_asked_ahead_for_a_stranger_or_an_entry_not_newer(pair, clock, tmp_path):
    a, b = pair
    hive_id = hive_store.get_meta(a.db.conn())["hive_id"]
    key, = admit(a, (a,), 1)
    stranger = Side("s", tmp_path, clock)
    newer = _gossip(key, hive_id, 2, clock)
    router.on_message(a.ctx, key.node_id, newer)
    a.lightning.calls.clear()
    router.prefetch(a.ctx, stranger.node_id, _gossip(stranger.lightning, hive_id, 1, clock))
    router.prefetch(a.ctx, key.node_id, _gossip(key, hive_id, 1, clock))     # older
    router.prefetch(a.ctx, key.node_id, newer)                                # the same
    assert "checkmessage" not in a.lightning.calls
    stranger.close()


def test_a_forgery_asked_ahead_is_still_refused(pair, clock):
    a, b = pair
    hive_id = hive_store.get_meta(a.db.conn())["hive_id"]
    key, other = admit(a, (a,), 2)
    forged = signed_state(other, hive_id, version=1, timestamp=int(clock.now()), peers=2)
    forged["state"] = {**forged["state"], "peer_id": key.node_id}   # other's signature
    msg = encode(MsgType.GOSSIP, forged)
    incoming = router.Incoming(a.ctx, key.node_id, msg)
    incoming.prefetch()
    with capture_logs() as logs:
        incoming.handle()
    assert hivemap.get(a.db.conn(), key.node_id) is None
    assert any(e.get("reason") == "not signed by the member it describes" for e in logs)


def test_json_depth_skips_strings_with_escaped_quotes_and_counts_the_rest():
    assert framing.json_depth('{"a":"[[[\\"{{{","b":[[1]]}') == 3
    assert framing.json_depth('{"unterminated [[[[') == 1
    assert framing.json_depth("]]]") == 0
    assert framing.json_depth("[" * 40) == 40
    # Without a backslash the quotes split strings from the rest; the same depths.
    assert framing.json_depth('{"a":"[[[{{{","b":[[1]]}') == 3
    assert framing.json_depth('{"a":1,"b":"]]]}}}"}') == 1


def test_json_depth_is_the_same_with_or_without_escapes_to_look_for():
    import random
    rng = random.Random(7)
    for _ in range(2000):
        text = "".join(rng.choice('[]{}"ab,:') for _ in range(rng.randrange(40)))
        # The regular expression's answer, the one that handles escapes, is the reference.
        brackets = framing._NOT_BRACKET.sub("", framing._STRING.sub("", text))
        depth, expected = 0, 0
        for c in brackets:
            depth += 1 if c in "[{" else -1
            expected = max(expected, depth)
        assert framing.json_depth(text) == expected, text


class _Sends:
    def __init__(self):
        self.sent = []

    def call(self, method, params=None):
        assert method == "sendcustommsg"
        self.sent.append(params["msg"])
        return {}


def test_a_drain_inside_a_batch_sends_nothing_before_the_commit(db, clock, config):
    from storage import outbox
    lightning = _Sends()
    engine = Engine(db, clock, lambda: config, lightning=lightning)
    release, held = threading.Event(), threading.Event()
    engine.submit(lambda: (held.set(), release.wait(10)))
    engine.start()
    try:
        assert held.wait(5)
        seen_inside = []

        def queues_and_drains():
            with db.transaction() as conn:
                outbox.add(conn, peer_id="02" + "11" * 32, msg_hex="8001", now=clock.now())
            engine.drain_outbox()               # as a handler could, through ctx.drain
            seen_inside.append(list(lightning.sent))
        futures = [engine.submit(queues_and_drains, droppable=True) for _ in range(2)]
        release.set()
        for f in futures:
            f.result(timeout=5)
        engine.submit(lambda: None).result(timeout=5)
    finally:
        engine.stop()
    assert seen_inside == [[], []]              # nothing left before the batch committed
    assert lightning.sent == ["8001", "8001"]   # and all of it after


class _StopsDuringSend:
    """lightningd that refuses every send, as to an offline member, and is told of a
    shutdown while the second send is in flight."""
    def __init__(self, engine_box):
        self.box, self.calls = engine_box, 0

    def call(self, method, params=None):
        self.calls += 1
        if self.calls == 2:
            self.box["engine"]._stopping.set()
        raise OSError("Connection refused")


def test_a_shutdown_during_a_long_drain_stops_it_before_the_next_row(db, clock, config):
    # Seen in the full crash run: a shutdown closed the database while the worker drained
    # ~750 messages to offline members, and recording the next failure raised.
    from storage import outbox
    box = {}
    lightning = _StopsDuringSend(box)
    engine = box["engine"] = Engine(db, clock, lambda: config, lightning=lightning)
    with db.transaction() as conn:
        for _ in range(20):
            outbox.add(conn, peer_id="02" + "11" * 32, msg_hex="8001", now=clock.now())
    assert engine.drain_outbox() == 0
    assert lightning.calls == 2                 # the drain stopped at the shutdown
    rows = outbox.due(db.conn(), clock.now() + 10_000)
    assert len(rows) == 20
    assert sorted(r["attempts"] for r in rows) == [0] * 19 + [1]   # only the first recorded


def test_a_drain_sends_every_due_row_unless_peer_input_waits(db, clock, config):
    """A broadcast to 250 members goes out in one drain (pages of OUTBOX_PAGE rows), not
    a page now and the rest at the next tick; with peer input waiting, the drain stops
    after a page and the worker serves that input first."""
    from handlers.frame.engine import OUTBOX_PAGE
    from storage import outbox
    lightning = _Sends()
    engine = Engine(db, clock, lambda: config, lightning=lightning)

    def queue(n):
        with db.transaction() as conn:
            for i in range(n):
                outbox.add(conn, peer_id="02%064x" % i, msg_hex="8001", now=clock.now())
    queue(250)
    assert engine.drain_outbox() == 250 and len(lightning.sent) == 250
    queue(250)
    engine.submit(lambda: None, droppable=True)      # waits: the worker is not started
    assert engine.drain_outbox() == OUTBOX_PAGE
    assert outbox.pending_count(db.conn()) == 250 - OUTBOX_PAGE
    engine.start()
    try:
        # the worker drains after each item; the one after that drain tells it is done
        engine.submit(lambda: None).result(timeout=5)
        engine.submit(lambda: None).result(timeout=5)
    finally:
        engine.stop()
    assert outbox.pending_count(db.conn()) == 0
