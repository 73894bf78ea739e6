"""Nodes, the links between them, custom-message delivery and seeded chaos."""
import hashlib
import heapq
import itertools
import queue
import random
import threading
import time
from datetime import datetime, timezone

from .fake_data import INIT_FEATURES, Channel
from .params import RpcFail

REORDER_WINDOW = (0.0, 0.05)  # seconds of random delay used by reorder when no delay range is set


def _key(a, b):
    return frozenset((a, b))


class _Link:
    def __init__(self, initiator, other, epoch):
        self.initiator, self.other, self.epoch = initiator, other, epoch
        self.state = "connecting"


class Network:
    """Holds nodes, carries custom messages between them on delivery threads (never in
    the sender's RPC call), in order per link unless chaos says otherwise."""

    def __init__(self, seed=0):
        self.nodes = {}
        self.seed = seed
        self.rng = random.Random(seed)
        self.drop, self.duplicate, self.delay, self.reorder = 0.0, 0.0, (0.0, 0.0), False
        self.stats = {"sent": 0, "delivered": 0, "dropped": 0, "duplicated": 0, "partitioned": 0, "lost": 0}
        self.trace = []  # (time, src, dst, payload, outcome), in order of outcome
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._links = {}
        self._groups = None
        self._heap = []
        self._seq = itertools.count()
        self._epochs = itertools.count(1)
        self._last_due = {}
        self._inflight = 0
        self._inboxes = {}
        self._threads = []
        self._closed = False
        self._ports = itertools.count(19735)
        self._chan_numbers = itertools.count(1)
        self._start_thread(self._scheduler, "net-scheduler")

    def _start_thread(self, target, name, *args):
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    # ---- membership ---------------------------------------------------
    def add_node(self, node):
        node.network = self
        node.port = next(self._ports)
        with self._lock:
            if self.nodes:              # one chain: a new node starts at its tip
                node.data.blockheight = max(n.data.blockheight for n in self.nodes.values())
            self.nodes[node.id] = node
            self._inboxes[node.id] = queue.Queue()
        self._start_thread(self._worker, "net-deliver-" + node.name, node.id)
        return node

    def node_by_id(self, nid):
        return self.nodes.get(nid)

    def peers_of(self, nid):
        with self._lock:
            return [next(iter(k - {nid})) for k in self._links if nid in k]

    def link_state(self, a, b):
        with self._lock:
            link = self._links.get(_key(a, b))
            return link.state if link else None

    # ---- chaos --------------------------------------------------------
    def set_chaos(self, seed=None, drop=None, delay=None, duplicate=None, reorder=None):
        """drop/duplicate: probabilities; delay: (min, max) seconds; reorder: random delay per
        message instead of FIFO per link. A new seed restarts the random sequence."""
        with self._lock:
            if seed is not None:
                self.seed, self.rng = seed, random.Random(seed)
            if drop is not None:
                self.drop = drop
            if duplicate is not None:
                self.duplicate = duplicate
            if delay is not None:
                self.delay = tuple(delay)
            if reorder is not None:
                self.reorder = reorder

    def partition(self, *groups):
        """Nodes in different groups cannot reach each other (nodes not listed form one more group).
        Messages across are lost and connects fail; existing links stay up, as TCP would for a while."""
        with self._lock:
            self._groups = {n.id: i for i, g in enumerate(groups) for n in g}

    def heal(self):
        with self._lock:
            self._groups = None

    def _partitioned(self, a, b):
        if self._groups is None:
            return False
        return self._groups.get(a, -1) != self._groups.get(b, -1)

    # ---- links --------------------------------------------------------
    def connect(self, a, b_id, host=None, port=None):
        """a connects out to b: peer_connected hooks on both sides, then connect notifications."""
        b = self.nodes.get(b_id)
        if b is None and host is None:
            raise RpcFail(400, "Unable to connect, no address known for peer")
        where = "%s:%s" % (host or "127.0.0.1", port or (b.port if b else 9735))
        if b is None or not b.running or (host not in (None, "127.0.0.1", "localhost")) or \
                (port is not None and port != b.port):
            raise RpcFail(401, "All addresses failed: %s: Connection refused. " % where)
        with self._lock:
            if self._partitioned(a.id, b.id):
                raise RpcFail(401, "All addresses failed: %s: Connection timed out. " % where)
            link = self._links.get(_key(a.id, b.id))
            if link is None:
                link = _Link(a.id, b.id, next(self._epochs))
                self._links[_key(a.id, b.id)] = link
                fresh = True
            else:
                fresh = False
        b_addr = {"type": "ipv4", "address": "127.0.0.1", "port": b.port}
        direction = "out" if link.initiator == a.id else "in"
        if not fresh:
            return {"id": b.id, "features": INIT_FEATURES, "direction": direction, "address": b_addr}
        in_port = 40000 + link.epoch  # the initiator's ephemeral port, as the acceptor sees it
        reason = a.peer_connected_hook(b.id, "out", "127.0.0.1:%d" % b.port)
        if reason is None:
            reason = b.peer_connected_hook(a.id, "in", "127.0.0.1:%d" % in_port)
        with self._lock:
            current = self._links.get(_key(a.id, b.id)) is link
            if reason is not None or not current:
                if current:
                    del self._links[_key(a.id, b.id)]
                raise RpcFail(402, "disconnected during connection%s" % (": " + reason if reason else ""))
            link.state = "connected"
        a.notify("connect", {"id": b.id, "direction": "out", "address": b_addr})
        b.notify("connect", {"id": a.id, "direction": "in",
                             "address": {"type": "ipv4", "address": "127.0.0.1", "port": in_port}})
        for src, dst in ((a, b), (b, a)):
            self._send_peer_storage(src.id, dst.id, link.epoch)
        return {"id": b.id, "features": INIT_FEATURES, "direction": "out", "address": b_addr}

    def _send_peer_storage(self, src, dst, epoch):
        """lightningd's chanbackup plugin gives every new peer a `peer_storage` message (type 7),
        which reaches the peer's plugins through the custommsg hook like any unknown message.
        It is lightningd's own traffic: no chaos, not in `stats` or `trace`."""
        blob = hashlib.sha256(("peer_storage:%s:%s" % (src, dst)).encode()).digest() + bytes(25)
        with self._cond:
            self._inflight += 1
            inbox = self._inboxes[dst]
        inbox.put((src, dst, "0007%04x%s" % (len(blob), blob.hex()), epoch, False))

    def disconnect(self, a, b_id):
        with self._lock:
            link = self._links.pop(_key(a.id, b_id), None)
        if link is None or link.state != "connected":
            return
        for n, other in ((a, b_id), (self.nodes.get(b_id), a.id)):
            if n is not None and n.running:
                n.notify("disconnect", {"id": other})

    def node_started(self, node):
        """lightningd reconnects to peers it has channels with."""
        for c in list(node.data.channels):
            other = self.nodes.get(c.other(node.id))
            if other is not None and other.running and not self.link_state(node.id, other.id):
                try:
                    self.connect(node, other.id)
                except RpcFail as e:
                    node.log("unusual", "lightningd", "reconnect to %s failed: %s" % (other.id, e.message))

    def node_stopped(self, node):
        for pid in self.peers_of(node.id):
            self.disconnect(node, pid)

    # ---- channels and gossip -----------------------------------------
    def open_channel(self, a, b_id, amount_sat, push_msat=0, announce=True, confirmed=True):
        """A channel from a to b. `confirmed` (fake data) makes it usable and announced at once;
        otherwise (fundchannel) it awaits lockin like lightningd's, until `mine` confirms it."""
        b = self.nodes[b_id]
        n = next(self._chan_numbers)
        chan = Channel(a.id, b.id, amount_sat, amount_sat * 1000 - push_msat, None,
                       a.data.new_txid("funding"), 0, private=not announce, state="CHANNELD_AWAITING_LOCKIN")
        chan.number = n
        with a.data.lock:
            a.data.channels.append(chan)
        with b.data.lock:
            b.data.channels.append(chan)
        b.notify("channel_opened", {"id": a.id, "funding_msat": amount_sat * 1000,
                                    "funding_txid": chan.funding_txid, "channel_ready": False})
        if confirmed:
            self._lock_in(chan, a.data.blockheight)
            if announce:
                self.announce_channel(chan)
        return chan

    def _lock_in(self, chan, mined_at):
        a, b = self.nodes[chan.ends[0]], self.nodes[chan.ends[1]]
        chan.scid, chan.state, chan.mined_at = "%dx%dx0" % (mined_at, chan.number), "CHANNELD_NORMAL", mined_at
        now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        for node, other, cause in ((a, b.id, "user"), (b, a.id, "remote")):
            node.notify("channel_state_changed", {
                "peer_id": other, "channel_id": chan.channel_id, "short_channel_id": chan.scid, "timestamp": now,
                "old_state": "CHANNELD_AWAITING_LOCKIN", "new_state": "CHANNELD_NORMAL", "cause": cause,
                "message": "Lockin complete"})

    def mine(self, n=1):
        """n blocks on the shared chain: funding transactions confirm in the first (regtest's
        mindepth is 1, as lightningd's), public channels are announced at 6 confirmations."""
        with self._lock:
            nodes = list(self.nodes.values())
        chans = {id(c): c for node in nodes for c in node.data.channels}.values()
        for _ in range(n):
            for node in nodes:
                with node.data.lock:
                    node.data.blockheight += 1
            height = max(node.data.blockheight for node in nodes)
            for c in chans:
                if c.state == "CHANNELD_AWAITING_LOCKIN":
                    self._lock_in(c, height)
                elif c.mined_at == height - 5 and not c.private:
                    self.announce_channel(c)

    def announce_channel(self, chan):
        """Gossip reaches every node at once: the channel and both endpoints' announcements."""
        chan.announced = True
        for node in list(self.nodes.values()):
            node.data.add_graph_channel(chan)
            for end in chan.ends:
                peer = self.nodes.get(end)
                node.data.add_graph_node(end, alias=peer.alias if peer else None, addresses=[
                    {"type": "ipv4", "address": "127.0.0.1", "port": peer.port}] if peer else [])

    # ---- custom messages ---------------------------------------------
    def send_custommsg(self, src, dst_id, msg):
        """Queue a message; chaos decisions are drawn here, in send order, from the seeded rng."""
        now = time.monotonic()
        with self._cond:
            self.stats["sent"] += 1
            link = self._links.get(_key(src.id, dst_id))
            if link is None:
                return
            if self._partitioned(src.id, dst_id):
                self._record(src.id, dst_id, msg, "partitioned")
                return
            if self.rng.random() < self.drop:
                self._record(src.id, dst_id, msg, "dropped")
                return
            copies = 2 if self.rng.random() < self.duplicate else 1
            if copies == 2:
                self.stats["duplicated"] += 1
            lo, hi = self.delay if (self.delay[1] > 0 or not self.reorder) else REORDER_WINDOW
            for _ in range(copies):
                due = now + (self.rng.uniform(lo, hi) if hi > 0 else 0.0)
                if not self.reorder:
                    due = max(due, self._last_due.get((src.id, dst_id), 0.0))
                    self._last_due[(src.id, dst_id)] = due
                heapq.heappush(self._heap, (due, next(self._seq), (src.id, dst_id, msg, link.epoch)))
                self._inflight += 1
            self._cond.notify_all()

    def _record(self, src, dst, msg, outcome):
        self.stats[outcome if outcome in self.stats else "lost"] += 1
        self.trace.append((time.time(), src, dst, msg, outcome))

    def _scheduler(self):
        while True:
            with self._cond:
                while not self._closed and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._cond.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                if self._closed:
                    return
                _, _, item = heapq.heappop(self._heap)
                inbox = self._inboxes[item[1]]
            inbox.put(item)

    def _worker(self, nid):
        inbox = self._inboxes[nid]
        while True:
            item = inbox.get()
            if item is None:
                return
            try:
                self._deliver(*item)
            finally:
                with self._cond:
                    self._inflight -= 1
                    self._cond.notify_all()

    def _deliver(self, src, dst, msg, epoch, record=True):
        node = self.nodes.get(dst)
        with self._lock:
            link = self._links.get(_key(src, dst))
            ok = link is not None and link.epoch == epoch and not self._partitioned(src, dst)
            if not ok or node is None or not node.running:
                if record:
                    self._record(src, dst, msg, "lost")
                return
        mtype = int(msg[:4], 16)
        if mtype % 2 == 0 and mtype not in node.custom_even_types():
            # connectd warns and hangs up on an unknown even message (multiplex.c:913-943).
            node.log("unusual", "connectd", "Invalid unknown even msg %d from %s" % (mtype, src))
            self._record(src, dst, msg, "lost")
            self.disconnect(node, src)
            return
        node.receive_custommsg(src, msg)
        if record:
            with self._lock:
                self._record(src, dst, msg, "delivered")

    def wait_idle(self, timeout=10.0):
        """Until every queued message has been delivered or lost."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._inflight:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("network still has %d message(s) in flight after %ss" % (self._inflight, timeout))
                self._cond.wait(left)

    def close(self):
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            inboxes = list(self._inboxes.values())
        for q in inboxes:
            q.put(None)
        for t in self._threads:
            t.join(5.0)
