"""The worker does not wait on anything: calls to lightningd time out, ticks coalesce behind
a busy worker, the queue is bounded (peer messages dropped first, never commands), and
read-only commands answer while the worker is held up."""
import os
import socket
import tempfile
import threading

import pytest
from pyln.client import RpcError
from structlog.testing import capture_logs

from handlers.frame import config as cfg
from handlers.frame import effects
from handlers.frame.effects import RPC_TIMEOUT, ThreadLocalRpc
from handlers.frame.engine import Engine
from handlers.hive import Hive
from tests.core.hive_sides import KeyOnlyLightning


@pytest.fixture
def engine(db, clock, config):
    e = Engine(db, clock, lambda: config, lightning=None, max_queue=5)
    e.start()
    yield e
    e.stop()


def hold(engine):
    """Keep the worker busy until the returned event is set."""
    release, running = threading.Event(), threading.Event()
    engine.submit(lambda: (running.set(), release.wait(10)))
    assert running.wait(5)
    return release


def test_ticks_coalesce_while_the_worker_is_busy(engine):
    ticks = []
    engine.on_tick.append(lambda: ticks.append(1))
    release = hold(engine)
    queued = [engine.schedule_tick() for _ in range(5)]
    release.set()
    engine.submit(lambda: None).result(timeout=5)
    assert queued == [True, False, False, False, False] and ticks == [1]
    assert engine.schedule_tick() is True            # once it ran, the next one queues
    engine.submit(lambda: None).result(timeout=5)
    assert ticks == [1, 1]


def test_a_full_queue_drops_the_oldest_peer_messages_and_never_a_command(engine):
    ran = []
    release = hold(engine)                        # the queue holds 5 items
    with capture_logs() as logs:
        peer = [engine.submit(lambda i=i: ran.append(f"peer{i}"), droppable=True)
                for i in range(4)]
        commands = [engine.submit(lambda i=i: ran.append(f"cmd{i}")) for i in range(3)]
        late = engine.submit(lambda: ran.append("peer-late"), droppable=True)
        commands += [engine.submit(lambda i=i: ran.append(f"cmd{i}")) for i in (3, 4)]
        # only commands wait now: a command still gets in, a peer message does not
        commands.append(engine.submit(lambda: ran.append("cmd5")))
        refused = engine.submit(lambda: ran.append("peer-refused"), droppable=True)
    release.set()
    for f in commands:
        f.result(timeout=5)
    assert ran == ["cmd0", "cmd1", "cmd2", "cmd3", "cmd4", "cmd5"]
    assert all(f.cancelled() for f in peer + [late, refused])
    assert engine.dropped == 6
    warnings = [e for e in logs if e["event"] == "engine.queue_full"]
    assert len(warnings) == 1 and warnings[0]["log_level"] == "warning"   # rate-limited


def test_read_only_work_answers_while_the_worker_is_held_up(engine):
    release = hold(engine)
    try:
        got = engine.read(lambda: (threading.current_thread().name,
                                   engine.db.schema_version())).result(timeout=5)
    finally:
        release.set()
    assert got[0].startswith("hive-reader") and got[1] > 0


class RecordingLightning(KeyOnlyLightning):
    def __init__(self, seed):
        super().__init__(seed)
        self.threads = []

    def call(self, method, params=None):
        self.threads.append((method, threading.current_thread().name))
        return super().call(method, params)


def test_status_members_and_diagram_answer_while_the_worker_waits(tmp_path, clock):
    lightning = RecordingLightning("a")
    hive = Hive(clock=clock)
    hive.start(cfg.from_init({}, str(tmp_path)), lightning)
    try:
        hive.command(lambda: hive.ctx.dispatcher.create("member_tier", lightning.node_id,
                                                        state="admin")).result(timeout=5)
        release = hold(hive.engine)
        try:
            status = hive.status().result(timeout=5)
            members = hive.members().result(timeout=5)
            diagram = hive.diagram("intent_lock").result(timeout=5)
        finally:
            release.set()
    finally:
        hive.stop()
    assert status["machines"]["member_tier"] == {"admin": 1}
    assert status["engine"]["dropped"] == 0 and status["engine"]["tick_failures"] == {}
    assert status["engine"]["queued"] <= 1             # at most a tick behind the held item
    assert members["members"] == [] or members["our_id"] == lightning.node_id
    assert diagram["machine"] == "intent_lock"
    # our node id was asked once, at start, on the starting thread: never by the reader
    assert [t for m, t in lightning.threads if m == "getinfo"] == [
        threading.current_thread().name]


@pytest.fixture
def silent_lightningd():
    """A real Unix socket that accepts requests and never answers (a stuck lightningd
    or companion)."""
    d = tempfile.mkdtemp(prefix="hive-rpc-", dir="/tmp")
    path = os.path.join(d, "lightning-rpc")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)
    held = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)
    threading.Thread(target=serve, daemon=True).start()
    yield path
    stop.set()
    server.close()
    for c in held:
        c.close()
    os.unlink(path)
    os.rmdir(d)


def test_a_call_that_gets_no_answer_times_out_as_an_rpc_error(silent_lightningd):
    rpc = ThreadLocalRpc(silent_lightningd, timeout=lambda method: 0.2)
    with pytest.raises(RpcError) as e:
        rpc.call("listpeerchannels", {})
    assert e.value.error["code"] == RPC_TIMEOUT
    assert "within 0.2 seconds" in e.value.error["message"]


def test_a_timed_out_call_in_a_tick_is_contained(silent_lightningd, db, clock, config):
    rpc = ThreadLocalRpc(silent_lightningd, timeout=lambda method: 0.2)
    engine = Engine(db, clock, lambda: config, lightning=rpc)
    ran = []
    engine.on_tick += [lambda: rpc.call("listfunds", {}), lambda: ran.append("later")]
    with capture_logs() as logs:
        engine.tick()
    assert ran == ["later"]
    [failed] = [e for e in logs if e["event"] == "engine.tick_step_failed"]
    assert failed["log_level"] == "warning" and "within 0.2 seconds" in failed["error"]


def test_calls_that_wait_on_a_peer_or_funding_get_longer(config):
    assert config.rpc_timeout_seconds == 30
    assert effects.timeout_for(config, "listpeerchannels") == 30
    assert effects.timeout_for(config, "revenue-rebalance") == 30
    assert effects.timeout_for(config, "fundchannel") == 120
    assert effects.timeout_for(config, "connect") == 120


def test_an_item_whose_lightningd_call_timed_out_is_a_warning_not_a_fault(
        silent_lightningd, db, clock, config):
    rpc = ThreadLocalRpc(silent_lightningd, timeout=lambda method: 0.2)
    engine = Engine(db, clock, lambda: config, lightning=None)
    engine.start()
    try:
        with capture_logs() as logs:
            failed = engine.submit(lambda: rpc.call("checkmessage", {}), droppable=True)
            after = engine.submit(lambda: "still serving")
            assert after.result(timeout=5) == "still serving"
    finally:
        engine.stop()
    with pytest.raises(RpcError):
        failed.result()
    [event] = [e for e in logs if e["event"] == "engine.item_failed"]
    assert event["log_level"] == "warning" and "within 0.2 seconds" in event["error"]
