"""The message path: signed GOSSIP messages fully applied by cl-hive (hook, queue,
authorization, decoding, freshness, `checkmessage`, the HiveMap write committed to disk,
its log line) against the floor, a bare pyln plugin that only calls `checkmessage` once
per message (bench/bare_checkmessage.py). Both run as real plugin processes on the
stand-in, fed the same messages through the custommsg hook as fast as it answers.

cl-hive's figure ends when the last state is in its database (read from the file); the
bare plugin's when its last hook answered (it checks inside the hook). Each side runs
ROUNDS times, the two alternating and taking turns at going first, so a burst of load on
the shared CPU hits both alike; each side's figure is its best round, and the ratio of
each round's pair is reported too (median and lowest), for the spread.
Prints figures; asserts nothing. Run: `python -m bench.message_path [messages]`.

cl-hive asks lightningd a burst's signature checks on one connection (as many as the
worker applies at once); pyln's client, which the bare plugin uses as any plugin would,
opens a connection per call. The stand-in serves a connection on a thread of its own, so
a connection costs it more than it costs lightningd: on real lightningd the same 1,000
checks ran about 1.3 to 2 times as fast on connections of 64 as one per connection (on
the stand-in 3.5 to 4 times), loaded 2-core VM.
"""
from __future__ import annotations

import logging
import sqlite3
import statistics
import sys
import threading
import time
from pathlib import Path

from handlers.frame import logs
from handlers.membership import members as membership
from handlers.wire.framing import MsgType, encode
from storage.db import Database
from tests.core.hivemap_fleet import signed_state
from tests.core.hive_sides import KeyOnlyLightning
from tests.standin.backend import StandinFleet

BARE = Path(__file__).with_name("bare_checkmessage.py")
# A peer may send a burst of 100, then 20 a second: 40 senders keep every round within it.
SENDERS, PEERS, ROUNDS = 40, 20, 5
FEEDERS = 4                 # peers whose messages arrive at the same time


def _payloads(keys, hive_id, per_sender, first_version):
    now = int(time.time())
    out = []
    for v in range(first_version, first_version + per_sender):
        for k in keys:
            out.append((k.node_id, encode(MsgType.GOSSIP, signed_state(
                k, hive_id, version=v, timestamp=now, peers=PEERS))))
    return out


def _admit(node, count):
    """Seed `count` members into the node's database with its own (admin) signatures,
    as the handshakes would have left them."""
    from handlers.frame import config as cfg
    from handlers.frame.clock import SystemClock
    from handlers.frame.context import Context
    from handlers.frame.dispatch import Dispatcher
    from handlers.frame.ratelimit import RateLimiter
    config = cfg.from_init({}, node.network_dir)
    db = Database(config.db_path)
    clock = SystemClock()
    admin = KeyOnlyLightning("unused")
    admin.key, admin.node_id = node.key, node.id
    ctx = Context(db=db, dispatcher=Dispatcher(db, clock, lambda: config), lightning=admin,
                  clock=clock, config=lambda: config, hello_limiter=RateLimiter(clock, 1, 1),
                  sync_limiter=RateLimiter(clock, 1, 1), full_sync_limiter=RateLimiter(clock, 1, 1),
                  council_limiter=RateLimiter(clock, 1, 1))
    hive_id = db.conn().execute("SELECT hive_id FROM hive_meta").fetchone()[0]
    keys = [KeyOnlyLightning(f"sender{i}") for i in range(count)]
    for k in keys:
        membership.add_member(ctx, membership.sign_admission(ctx, hive_id, k.node_id, "member",
                                                             None))
    db.close()
    return hive_id, keys, config.db_path


def _applied(conn, keys, version) -> bool:
    marks = ",".join("?" for _ in keys)
    n = conn.execute(f"SELECT count(*) FROM hive_state WHERE version >= ? AND peer_id IN "
                     f"({marks})", (version, *[k.node_id for k in keys])).fetchone()[0]
    return n == len(keys)


def _feed(node, payloads):
    """As lightningd delivers them: each peer's messages in order, several peers at once
    (lightningd does not wait for one peer's hook call to end before the next peer's)."""
    lanes = [[p for i, p in enumerate(payloads) if hash(p[0]) % FEEDERS == lane]
             for lane in range(FEEDERS)]
    threads = [threading.Thread(target=lambda lane=lane: [
        node.standin.receive_custommsg(sender, payload) for sender, payload in lane])
        for lane in lanes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def measure(messages: int = 1000) -> dict:
    # The stand-in serves lightningd's side on threads of this process: hand the lock over
    # as often as the plugin does, so a waiting socket is served (lightningd never waits
    # on a lock held by a busy thread).
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    try:
        return _measure(messages)
    finally:
        sys.setswitchinterval(switch)


def _measure(messages: int) -> dict:
    per_sender = max(1, messages // SENDERS)
    n = per_sender * SENDERS
    fleet = StandinFleet()
    try:
        hive, bare = fleet.nodes(2, plugins=None), None
        hive = hive[0]
        fleet.all_nodes[1].kill_all()
        bare, = fleet.nodes(1, plugins=[BARE])
        hive.rpc.call("hive-genesis", {})
        hive_id, keys, db_path = _admit(hive, SENDERS)
        bare.rpc.call("bare-counts", {"hive_id": hive_id})
        version, ours, base = 1, [], []

        def run_ours(payloads, last_version):
            t0 = time.perf_counter()
            _feed(hive, payloads)
            # One reader, every 10 ms: the poll runs in the process that also serves as
            # lightningd, so it must not take the CPU the plugin's messages need.
            reader = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
            try:
                while not _applied(reader, keys, last_version):
                    time.sleep(0.01)
            finally:
                reader.close()
            ours.append(time.perf_counter() - t0)

        def run_bare(payloads, _last_version):
            before = bare.rpc.call("bare-counts", {})["verified"]
            t0 = time.perf_counter()
            _feed(bare, payloads)
            base.append(time.perf_counter() - t0)
            checked = bare.rpc.call("bare-counts", {})
            if checked["verified"] - before != n or checked["refused"]:
                raise RuntimeError(f"the bare plugin did not verify every message: {checked}")

        for i in range(ROUNDS):
            # Fresh states each round (a state not newer than the one held is not verified).
            payloads = _payloads(keys, hive_id, per_sender, version)
            version += per_sender
            for run in ((run_ours, run_bare) if i % 2 == 0 else (run_bare, run_ours)):
                run(payloads, version - 1)
        pairs = sorted(b / o for o, b in zip(ours, base))
        return {"messages": n, "ours_rate": n / min(ours), "bare_rate": n / min(base),
                "round_median": statistics.median(pairs), "round_lowest": pairs[0]}
    finally:
        fleet.teardown()


def main() -> None:
    logs.configure(lambda message, level: None, level=logging.WARNING)
    r = measure(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
    out = sys.stdout.write
    out(f"message path, {r['messages']} signed GOSSIP messages from {SENDERS} members "
        f"({PEERS} external peers each), best of {ROUNDS} rounds each\n")
    out(f"  cl-hive, fully applied        : {r['ours_rate']:9,.0f} messages/s\n")
    out(f"  bare plugin, checkmessage only: {r['bare_rate']:9,.0f} messages/s\n")
    out(f"  ratio cl-hive / bare          : {r['ours_rate'] / r['bare_rate']:9.2f}x\n")
    out(f"  ratio per round               : {r['round_median']:9.2f}x median, "
        f"{r['round_lowest']:.2f}x lowest\n")


if __name__ == "__main__":
    main()
