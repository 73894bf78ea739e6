"""The simulated network: custom messages between nodes delivered in simulated time, with
delay, loss, duplication and partitions; deterministic for a seed. Each link keeps
its order (the peers' one connection), whatever the delay drawn for each message.

Which nodes are peers is fixed (lightningd's connections); a partition cuts the links
between groups: each side sees the other disconnected (`listpeers`), a send across the cut
fails as lightningd's `sendcustommsg` to a disconnected peer does, and a message already
in flight across it is lost. Healing reconnects the links and each side gets lightningd's
`connect` notification for the peers it got back."""
from __future__ import annotations

import heapq
import json
import random
from collections import Counter

from pyln.client import RpcError

from handlers.wire.framing import MsgType, peek


_NAMES = {t.value: t.name for t in MsgType}


class Scheduler:
    """Events in simulated time, in order, moving one ManualClock forward."""

    def __init__(self, clock):
        self.clock = clock
        self._events: list = []
        self._seq = 0

    def at(self, when: float, fn) -> None:
        heapq.heappush(self._events, (when, self._seq, fn))
        self._seq += 1

    def after(self, delay: float, fn) -> None:
        self.at(self.clock.now() + delay, fn)

    def run_until(self, until: float) -> None:
        while self._events and self._events[0][0] <= until:
            when, _, fn = heapq.heappop(self._events)
            self.clock.advance(max(0.0, when - self.clock.now()))
            fn()
        self.clock.advance(max(0.0, until - self.clock.now()))


class Network:
    def __init__(self, scheduler: Scheduler, seed: int, *, delay: float = 0.05,
                 jitter: float = 0.1):
        self.scheduler = scheduler
        self.rng = random.Random(seed)
        self.delay, self.jitter = delay, jitter      # seconds: delay + uniform(0, jitter)
        self.loss = 0.0                              # probability a message is lost
        self.duplicate = 0.0                         # probability it arrives twice
        self.nodes: dict = {}                        # node id -> node (.receive, .connected_to)
        self.links: dict[str, set[str]] = {}
        self.group: dict[str, int] = {}              # partition side; empty when whole
        self.sent: Counter = Counter()               # messages by type name, and "bytes"
        self.bytes: Counter = Counter()              # bytes by type name
        self.gossip_bytes: Counter = Counter()       # GOSSIP bytes by sender
        self.lost_gossip: Counter = Counter()        # GOSSIP bytes lost, by sender
        self.old_before = None   # when set, GOSSIP of states made by then is counted apart
        self._last: dict[tuple[str, str], float] = {}   # last delivery time per link
        self.checked: dict = {}                      # checkmessage answers, shared

    def add(self, node) -> None:
        self.nodes[node.node_id] = node
        self.links.setdefault(node.node_id, set())

    def link(self, a: str, b: str) -> None:
        self.links[a].add(b)
        self.links[b].add(a)

    def up(self, a: str, b: str) -> bool:
        return b in self.links[a] and self.group.get(a) == self.group.get(b)

    def _refresh(self) -> None:
        for nid, node in self.nodes.items():
            node.lightning.connected = {p for p in self.links[nid] if self.up(nid, p)}

    def send(self, src: str, dst: str, msg_hex: str) -> None:
        """lightningd's sendcustommsg: refused when the peer is not connected."""
        if not self.up(src, dst):
            raise RpcError("sendcustommsg", {"node_id": dst},
                           {"code": -1, "message": "peer is not connected"})
        kind = peek(msg_hex)
        name = _NAMES.get(kind) or MsgType(kind).name
        size = len(msg_hex) // 2
        self.sent[name] += 1
        self.sent["bytes"] += size
        self.bytes[name] += size
        if name == "GOSSIP":
            self.gossip_bytes[src] += size
            if self.old_before is not None and json.loads(bytes.fromhex(msg_hex[12:]))[
                    "state"]["timestamp"] <= self.old_before:
                self.bytes["GOSSIP made before the mark"] += size
        copies = 0 if self.rng.random() < self.loss else 1
        if not copies and name == "GOSSIP":
            self.bytes["GOSSIP lost"] += size
            self.lost_gossip[src] += size
        if copies and self.rng.random() < self.duplicate:
            copies = 2
        for _ in range(copies):
            # In order on each link, as over the peers' one connection.
            when = max(self.scheduler.clock.now() + self.delay + self.rng.random() * self.jitter,
                       self._last.get((src, dst), 0.0))
            self._last[(src, dst)] = when
            self.scheduler.at(when, lambda: self._deliver(src, dst, msg_hex))

    def _deliver(self, src: str, dst: str, msg_hex: str) -> None:
        if self.up(src, dst):            # in flight across a cut made meanwhile: lost
            self.nodes[dst].receive(src, msg_hex)

    def partition(self, *groups) -> None:
        self.group = {nid: i for i, g in enumerate(groups) for nid in g}
        self._refresh()

    def heal(self) -> None:
        # Each node's connections come back in an order of their own (connectd's retry
        # timers), not all in one: in the same order everywhere, every member's first
        # reconnection would be to the same member.
        back = sorted((a, b) for a in self.links for b in self.links[a] if not self.up(a, b))
        self.rng.shuffle(back)
        self.group = {}
        self._refresh()
        for a, b in back:                # lightningd's `connect` notification, each side
            self.nodes[a].connected_to(b)
