"""Crash injection on the stand-in: the initiators (the admin and as many members as the
intents need) run tests/crash/crashing_plugin.py, which SIGKILLs itself at random kill
points (before and after each commit, while an intent executes, while sending); whenever
one died its node is restarted, and the work goes on: channel-open intents announced in
turn by every initiator, then handshakes of new members with the admin while the intents
finish. Afterwards, with crashes off: no acknowledged intent lost or left unfinished,
none executed twice (on any node), every machine in a declared state, `PRAGMA
integrity_check` ok on every crashed node's database, every joiner that was told `joined`
a member; the kill points hit are counted.

One member announces at most MAX_INTENTS_PER_WINDOW intents in two hours (its peers
refuse more: the intake bound), so the intents are spread over enough initiators, each
well under the bound (a call a kill cut short may have announced one the harness never
learnt of). The intents come first: a joiner is a voter on every intent announced after
it joined, and joiners talk to the admin only."""
from __future__ import annotations

import collections
import os
import secrets
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pyln.client import RpcError

from handlers.intents.locks import MAX_INTENTS_PER_WINDOW
from machines import SPECS
from storage import db, machine_rows, transition_log
from storage import intents as intents_store
from tests.standin.node import NodeFault

CRASHING = Path(__file__).resolve().parent / "crashing_plugin.py"
FAST = {"hive-tick-seconds": 1, "hive-intent-hold-seconds": 5,
        "hive-intent-expire-seconds": 30}
FINAL = ("executed", "failed", "aborted", "expired")
PER_INITIATOR = MAX_INTENTS_PER_WINDOW - 20


class Victim:
    """A crashing node: calls that meet a dead plugin restart the node and try again."""

    def __init__(self, fleet, node):
        self.fleet, self.node = fleet, node
        self.peers = []             # reconnected after each restart, as lightningd would
        self.restarts = 0
        self.db_path = None
        self._lock = threading.Lock()   # one restart at a time (its keeper, or a caller)
        node.expect_fault("plugin-died")

    @property
    def id(self):
        return self.node.id

    def dead(self) -> bool:
        return not any(h.alive and h.name == CRASHING.name for h in self.node.hosts)

    def _dies_soon(self, grace: float = 3.0) -> bool:
        """A call the kill cut short can fail before the node has seen the process die
        (a busy machine widens that gap): give it a moment before calling it alive."""
        deadline = time.monotonic() + grace
        while not self.dead():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def connect(self, peer) -> None:
        with self._lock:
            self.peers.append(peer)
            self.fleet.connect(peer, self.node)

    def forget(self, peer) -> None:
        """`peer` went offline for good: not reconnected after a restart."""
        with self._lock:
            self.peers.remove(peer)

    def revive(self) -> None:
        with self._lock:
            self._restart()

    def _restart(self) -> None:
        self.node.restart()
        self.restarts += 1
        for peer in self.peers:
            self.fleet.connect(peer, self.node)

    def revive_if_dead(self) -> None:
        with self._lock:
            if self.dead():
                self._restart()

    def keep_alive(self, stop: threading.Event) -> threading.Thread:
        """A thread that restarts the node whenever its plugin died, until `stop`."""
        def loop():
            while not stop.wait(0.2):
                self.revive_if_dead()
        t = threading.Thread(target=loop, name=f"keeper-{self.node.name}", daemon=True)
        t.start()
        return t

    def call(self, method, params=None):
        for _ in range(50):
            self.revive_if_dead()
            restarts = self.restarts
            try:
                return self.node.rpc.call(method, params or {})
            except (RpcError, NodeFault, OSError) as e:
                # the keeper may have restarted the node since the call began
                restarted = self._lock.locked() or self.restarts != restarts
                if not (restarted or self._dies_soon()):
                    raise RuntimeError(f"{method} failed with the plugin alive: {e}") from e
        raise RuntimeError(f"{method}: the plugin kept dying")

    def states(self) -> dict:
        """Our own intents' states, read from the database (a dead plugin has no RPC)."""
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30)
        try:
            return intents_store.states_by(conn, self.id)
        finally:
            conn.close()


def _db_checks(path: str, me: str, acknowledged: set[str]) -> dict:
    conn = sqlite3.connect(path)
    try:
        integrity = db.integrity_check(conn)
        locks = intents_store.states_by(conn, me)
        starts = collections.Counter(transition_log.instances_fired(
            conn, "intent_lock", "start_execution"))
        states = machine_rows.all_states(conn)
    finally:
        conn.close()
    return {"integrity": integrity,
            "lost": sorted(acknowledged - set(locks)),
            "unfinished": sorted(i for i in acknowledged if locks.get(i) not in FINAL),
            "starts": starts,
            "illegal": [(k, s) for k, s in states if s not in SPECS[k].states]}


def _announce(victim, share: int, slack: int) -> tuple[set[str], int]:
    """`share` channel opens by one initiator; returns the acknowledged ids and the number
    of calls refused with the plugin alive (at most `slack`)."""
    acknowledged, refused = set(), 0
    while len(acknowledged) < share and refused <= slack:
        target = "02" + secrets.token_hex(32)
        try:
            out = victim.call("hive-intent", {"type": "channel_open", "target": target,
                                              "amount_sat": 100_000})
        except RuntimeError:
            refused += 1            # e.g. a retry after a kill that had announced it
            continue
        acknowledged.add(out["intent_id"])
    return acknowledged, refused


def _join(admin, joiner, patience: float) -> bool:
    """One handshake, retried with the same ticket as hive-join's answer says (the admin
    may have died in the middle, or admitted us and died before its WELCOME)."""
    ticket = admin.call("hive-invite")["ticket"]
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        admin.revive_if_dead()
        try:
            state = joiner.rpc.call("hive-join", {"ticket": ticket})["state"]
        except RpcError:
            state = None            # busy: our last session still waits for its timeout
        if state == "joined":
            return True
        if state == "failed":       # refused (not merely unanswered): a fresh ticket
            ticket = admin.call("hive-invite")["ticket"]
        time.sleep(1)
    return False


def _handshakes(fleet, admin, handshakes: int, options: dict, parallel: int = 4) -> set[str]:
    """`handshakes` new nodes join through the admin, `parallel` at a time. A joiner then
    shuts down (an offline member): a hundred live ones would starve the machine, and what
    is checked of them is in the admin's database."""
    joined = set()
    for first in range(0, handshakes, parallel):
        batch = fleet.nodes(min(parallel, handshakes - first), options=options)
        for joiner in batch:
            admin.connect(joiner)
        with ThreadPoolExecutor(len(batch)) as pool:
            done = list(pool.map(lambda j: _join(admin, j, patience=300), batch))
        joined |= {j.id for j, ok in zip(batch, done) if ok}
        for joiner in batch:
            admin.forget(joiner)
            joiner.stop()
    return joined


def run(fleet, intents: int, handshakes: int, rate: float, crash_log: str,
        per_initiator: int = PER_INITIATOR, settle: float = 300.0) -> dict:
    os.environ.update(HIVE_CRASH_RATE="0", HIVE_CRASH_LOG=crash_log)
    count = max(1, -(-intents // per_initiator))
    # The admin admits the initiators and every joiner (hive-max-members is its option).
    options = {**FAST, "hive-max-members": max(50, count + handshakes + 2)}
    victims = [Victim(fleet, n) for n in
               fleet.nodes(count, options=options, plugins=[str(CRASHING)])]
    admin = victims[0]
    b = fleet.nodes(1, options=options)[0]      # a member that never crashes
    for i, v in enumerate(victims):
        v.connect(b)
        for w in victims[i + 1:]:
            v.connect(w.node)
            w.peers.append(v.node)
    for v in victims:
        v.db_path = v.call("hive-status")["db_path"]
    admin.call("hive-genesis")
    for joiner in [v.node for v in victims[1:]] + [b]:
        ticket = admin.call("hive-invite")["ticket"]
        assert joiner.rpc.call("hive-join", {"ticket": ticket})["state"] == "joined"
    os.environ["HIVE_CRASH_RATE"] = str(rate)          # from the next (re)start on
    for v in victims:
        v.revive()
    stop = threading.Event()
    keepers = [v.keep_alive(stop) for v in victims]    # a dead initiator neither
    started = time.monotonic()                         # acknowledges nor executes
    shares = [intents // count + (i < intents % count) for i in range(count)]
    slack = MAX_INTENTS_PER_WINDOW - per_initiator
    with ThreadPoolExecutor(count) as pool:
        announced = list(pool.map(lambda vs: _announce(*vs, slack), zip(victims, shares)))
    acknowledged = {v.id: ids for v, (ids, _) in zip(victims, announced)}
    joiners = _handshakes(fleet, admin, handshakes, options)
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:                 # the ticks run them, crashing
        if all(v.states().get(i) in FINAL for v in victims for i in acknowledged[v.id]):
            break
        time.sleep(0.5)
    stop.set()
    for t in keepers:
        t.join()
    os.environ["HIVE_CRASH_RATE"] = "0"
    for v in victims:
        v.revive()                                     # a last restart: reconciliation
    members = {m["peer_id"] for m in admin.call("hive-members")["members"]}
    joined = joiners | {b.id} | {v.id for v in victims[1:]}
    points = collections.Counter(Path(crash_log).read_text().split()) \
        if os.path.exists(crash_log) else collections.Counter()
    checks = [_db_checks(v.db_path, v.id, acknowledged[v.id]) for v in victims]
    starts = sum((c["starts"] for c in checks), collections.Counter())
    return {"seconds": time.monotonic() - started,
            "intents": sum(map(len, acknowledged.values())),
            "refused": sum(r for _, r in announced),
            "initiators": count, "handshakes": handshakes, "joined": len(joiners),
            "restarts": sum(v.restarts for v in victims),
            "kills": sum(points.values()), "kill_points": dict(points),
            "members_missing": sorted(joined - members),
            "integrity": sorted({r for c in checks for r in c["integrity"]}),
            "lost": [i for c in checks for i in c["lost"]],
            "unfinished": [i for c in checks for i in c["unfinished"]],
            "executed_twice": sorted(k for k, n in starts.items() if n > 1),
            "executions": sum(starts.values()),
            "illegal": [x for c in checks for x in c["illegal"]]}
