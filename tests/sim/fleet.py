"""N hive nodes in one process, each one a `Side` (tests/core/hive_sides.py): its own real
SQLite database (in memory: no disk sync to wait for), the real handlers and rate
limiters, and a node key whose signmessage/checkmessage are real secp256k1 computed as
lightningd computes them (the stand-in's key code: a forgery is refused exactly as
lightningd refuses it). Each distinct check is computed once for the whole fleet
(`Network.checked`): with that, signing and checking are a small part of the cost at
1,000 members (the handlers' SQLite and parsing are most of it), so no faster stand-in
signer is used. Sends go through the engine's own outbox drain into the simulated
network (`network.py`); a node's tick is the HiveMap's tick (`gossip.on_tick`).

The hive is formed by seeding, not by N handshakes: one database receives the genesis,
every member's admission signed by the real admin key and every member's first state
signed by the member's own key, and each node starts from a copy of it (SQLite's backup
API), which is what the handshakes and a first round of gossip would have left."""
from __future__ import annotations

import random
import tempfile
from pathlib import Path

from handlers import router
from handlers.frame.engine import Engine
from handlers.frame.ratelimit import RateLimiter
from handlers.hive import MESSAGE_BURST, MESSAGE_RATE
from handlers.hivemap import gossip
from handlers.hivemap.rules import SETTLE_SECONDS, summarize
from handlers.membership import members as membership
from handlers.wire import signing
from handlers.wire.framing import peek
from storage import hive as hive_store
from storage import hivemap, outbox
from tests.core.hive_sides import KeyOnlyLightning, Side
from tests.sim.network import Network, Scheduler


class _Forget(list):
    """A call log that keeps nothing (a long simulation makes millions of calls)."""

    def append(self, _item) -> None:
        pass


class SimLightning(KeyOnlyLightning):
    def __init__(self, seed: str, network: Network):
        super().__init__(seed)
        self.network = network
        self.calls = _Forget()
        self._peers = None          # (the `connected` it was built from, listpeers)

    def call(self, method, params=None):
        if method == "sendcustommsg":
            self.network.send(self.node_id, params["node_id"], params["msg"])
            return {}
        if method == "listpeers" and not params:
            # Asked at every broadcast and sync: built again only when the peers
            # connected changed, not 1,000 entries each time.
            if self._peers is None or self._peers[0] != self.connected:
                self._peers = (frozenset(self.connected), super().call(method, params))
            return self._peers[1]
        if method == "checkmessage":
            # A pure function of its arguments: each distinct signature is really checked
            # once for the whole fleet, not once per receiver (N times the same answer).
            key = (params["message"], params["zbase"], params["pubkey"])
            if key not in self.network.checked:
                self.network.checked[key] = super().call(method, params)
            return self.network.checked[key]
        return super().call(method, params)


class SimNode(Side):
    def __init__(self, name, tmp, clock, network, options):
        super().__init__(name, tmp, clock, lightning=SimLightning(name, network),
                         db_path=":memory:", **options)
        self.engine = Engine(self.db, clock, lambda: self.config, self.lightning)  # its drain
        self.limiter = RateLimiter(clock, MESSAGE_RATE, MESSAGE_BURST)   # the hook's budget

    def receive(self, sender, msg_hex: str) -> None:
        """What the custommsg hook and then the worker do with one message."""
        if peek(msg_hex) is None or not self.limiter.allow(sender):
            return
        router.on_message(self.ctx, sender, msg_hex)
        self.engine.drain_outbox()

    def tick(self) -> None:
        gossip.on_tick(self.ctx)
        self.engine.drain_outbox()
        # Sent messages are kept a day for inspection; a thousand simulated nodes would
        # hold gigabytes of them.
        with self.db.transaction() as conn:
            outbox.prune_sent(conn, before=self.ctx.clock.now())

    def connected_to(self, peer_id: str) -> None:
        gossip.on_member_connected(self.ctx, peer_id)
        self.engine.drain_outbox()

    def held(self, peer_id: str):
        return hivemap.held(self.db.conn(), peer_id)

    def fleet_hash(self, settled: int | None = None) -> str:
        """Of every state held, or (`settled`) what a STATE_HASH of then covers."""
        return gossip.our_hash(self.ctx, settled)[0]


def channels(rng: random.Random, count: int) -> list[dict]:
    """A node's channels to outside peers, as listpeerchannels shows them."""
    return [{"peer_id": "02" + rng.randbytes(32).hex(), "short_channel_id": f"1x{i}x0",
             "state": "CHANNELD_NORMAL", "total_msat": rng.randrange(1, 50) * 100_000_000,
             "fee_base_msat": 1000, "fee_proportional_millionths": rng.randrange(1, 500)}
            for i in range(count)]


class SimFleet:
    def __init__(self, n: int, *, seed: int = 1, degree: int | None = None,
                 channels_each: int = 3, options: dict | None = None):
        """`degree`: about how many peers each node has; None (the default) connects every
        member to every other, the topology the protocol assumes (GOSSIP is sent to the
        connected members and never relayed)."""
        from handlers.frame.clock import ManualClock
        self.rng = random.Random(seed)
        self.clock = ManualClock()
        self.scheduler = Scheduler(self.clock)
        self.network = Network(self.scheduler, seed)
        self._tmp = tempfile.TemporaryDirectory()
        tmp = Path(self._tmp.name)
        self.options = {"hive-tick-seconds": 30, **(options or {})}
        self.nodes = [SimNode(f"n{i}", tmp, self.clock, self.network, self.options)
                      for i in range(n)]
        for node in self.nodes:
            self.network.add(node)
            node.lightning.channels = channels(self.rng, channels_each)
        self._link(degree)
        self._seed()
        self.network.partition()                 # no cut: sets who each node sees
        self.config = self.nodes[0].config
        tick, sync = self.config.tick_seconds, self.config.sync_interval
        for node in self.nodes:                  # ticks at their own phase, as nodes would
            self._every(tick, self.rng.random() * tick, node.tick)
            # and periodic syncs spread over the sync interval, as in a fleet that has run
            # a while (else every node's first sync would fall in its first tick, and with
            # ticks shorter than the interval all syncs in the same part of it)
            node.ctx.timers["last_sync"] = self.clock.now() - self.rng.random() * sync

    def _link(self, degree: int | None) -> None:
        ids = [n.node_id for n in self.nodes]
        if degree is None or len(ids) - 1 <= degree:
            for i, a in enumerate(ids):
                for b in ids[i + 1:]:
                    self.network.link(a, b)
            return
        for a in ids:                            # about `degree` peers each, at random
            for b in self.rng.sample([x for x in ids if x != a], degree // 2):
                self.network.link(a, b)

    def _seed(self) -> None:
        admin, *others = self.nodes
        membership.genesis(admin.ctx, "sim")
        self.hive_id = hive_store.get_meta(admin.db.conn())["hive_id"]
        ids = {n.node_id for n in self.nodes}
        with admin.db.transaction() as conn:
            for node in others:
                membership.add_member(admin.ctx, membership.sign_admission(
                    admin.ctx, self.hive_id, node.node_id, "member", None))
            for node in self.nodes:
                summary = summarize(node.node_id, node.lightning.channels, [], ids)
                # Published at some point of the last heartbeat interval, so heartbeats
                # are spread over it as in a fleet that has run a while.
                age = self.rng.randrange(self.nodes[0].config.heartbeat_interval)
                state = {**summary, "version": 1, "timestamp": node.ctx.now() - age}
                hivemap.put_if_newer(conn, state, signing.sign(
                    node.lightning, self.hive_id, "STATE", state), self.clock.now())
        for node in others:
            admin.db.conn().backup(node.db.conn())

    def _every(self, period: float, first: float, fn) -> None:
        def run():
            fn()
            self.scheduler.after(period, run)
        self.scheduler.after(first, run)

    def run(self, seconds: float) -> None:
        self.scheduler.run_until(self.clock.now() + seconds)

    def latest(self, peer_ids) -> dict[str, tuple]:
        """Each member's own state as the member holds it: what everyone should hold."""
        by_id = {n.node_id: n for n in self.nodes}
        return {p: by_id[p].held(p) for p in peer_ids}

    def lacking(self, targets: dict[str, tuple], pending: dict | None = None) -> dict:
        """Each node that holds an older state than `targets` of some member, with those
        members: {node: [member, ...]}. `pending`: what an earlier call returned; versions
        never go back, so only what a node lacked then is looked up again (one indexed
        query per node, not a scan of its whole view: at 1,000 members a scan of every
        node at every check cost more than the simulation itself)."""
        if pending is None:
            pending = {n: list(targets) for n in self.nodes}
        out = {}
        for n, peers in pending.items():
            if not peers:
                continue
            conn = n.db.conn()
            # Still lacking the first member it lacked: pending, whatever the rest (one
            # look-up for most nodes at most checks).
            first = hivemap.held(conn, peers[0])
            if first is None or first[0] < targets[peers[0]][0]:
                out[n] = peers
                continue
            held = hivemap.versions(conn, peers)
            still = [p for p in peers if held.get(p, 0) < targets[p][0]]
            if still:
                out[n] = still
        return out

    def level(self, settled: bool = False) -> bool:
        """Every node's fleet hash the same: of every state held, or (`settled`) of the
        states a STATE_HASH sent now would cover (in a large fleet, a heartbeat is always
        still on its way to some node, so the former is seldom true at any instant)."""
        at = self.nodes[0].ctx.now() - SETTLE_SECONDS if settled else None
        return len({n.fleet_hash(at) for n in self.nodes}) == 1

    def close(self) -> None:
        for n in self.nodes:
            n.close()
        self._tmp.cleanup()
