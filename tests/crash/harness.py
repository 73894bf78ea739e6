"""Crash injection on the stand-in: the admin runs tests/crash/crashing_plugin.py, which
SIGKILLs itself at random kill points (before and after each commit, while an intent
executes, while sending); whenever it died the node is restarted, and the work goes on:
handshakes of new members, then channel-open intents. Afterwards, with crashes off: no
acknowledged intent lost, none executed twice, every machine in a declared state,
`PRAGMA integrity_check` ok, every joiner that was told `joined` a member; the kill points
hit are counted."""
from __future__ import annotations

import collections
import os
import secrets
import sqlite3
import time
from pathlib import Path

from pyln.client import RpcError

from machines import SPECS
from tests.standin.node import NodeFault

CRASHING = Path(__file__).resolve().parent / "crashing_plugin.py"
FAST = {"hive-tick-seconds": 1, "hive-intent-hold-seconds": 5,
        "hive-intent-expire-seconds": 30}
FINAL = ("executed", "failed", "aborted", "expired")


class Victim:
    """The crashing admin: calls that meet a dead plugin restart the node and say None."""

    def __init__(self, fleet, node):
        self.fleet, self.node = fleet, node
        self.peers = []             # reconnected after each restart, as lightningd would
        self.restarts = 0
        node.expect_fault("plugin-died")

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
        self.peers.append(peer)
        self.fleet.connect(peer, self.node)

    def revive(self) -> None:
        self.node.restart()
        self.restarts += 1
        for peer in self.peers:
            self.fleet.connect(peer, self.node)

    def call(self, method, params=None):
        for _ in range(50):
            if self.dead():
                self.revive()
            try:
                return self.node.rpc.call(method, params or {})
            except (RpcError, NodeFault, OSError) as e:
                if not self._dies_soon():
                    raise RuntimeError(f"{method} failed with the plugin alive: {e}") from e
        raise RuntimeError(f"{method}: the plugin kept dying")


def _db_checks(path: str, acknowledged: set[str]) -> dict:
    conn = sqlite3.connect(path)
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchall()
        locks = {r[0]: r[1] for r in conn.execute(
            "SELECT intent_id, state FROM intent_locks")}
        starts = collections.Counter(r[0] for r in conn.execute(
            "SELECT instance_id FROM transition_log WHERE kind = 'intent_lock' "
            "AND trigger = 'start_execution'"))
        states = []
        for table in ("intent_locks", "hive_members", "handshake_sessions", "pending_actions",
                      "circuit_breakers", "contribution_throttles"):
            states += conn.execute(f"SELECT kind, state FROM {table}").fetchall()
    finally:
        conn.close()
    return {"integrity": [r[0] for r in integrity],
            "lost": sorted(acknowledged - set(locks)),
            "unfinished": sorted(i for i in acknowledged if locks.get(i) not in FINAL),
            "executed_twice": sorted(k for k, n in starts.items() if n > 1),
            "executions": sum(starts.values()),
            "illegal": [(k, s) for k, s in states if s not in SPECS[k].states]}


def run(fleet, intents: int, handshakes: int, rate: float, crash_log: str) -> dict:
    os.environ.update(HIVE_CRASH_RATE="0", HIVE_CRASH_LOG=crash_log)
    a = fleet.nodes(1, options=FAST, plugins=[str(CRASHING)])[0]
    b = fleet.nodes(1, options=FAST)[0]
    admin = Victim(fleet, a)
    admin.connect(b)
    db_path = admin.call("hive-status")["db_path"]
    admin.call("hive-genesis")
    ticket = admin.call("hive-invite")["ticket"]
    assert b.rpc.call("hive-join", {"ticket": ticket})["state"] == "joined"
    os.environ["HIVE_CRASH_RATE"] = str(rate)          # from the next (re)start on
    admin.revive()
    joined = {b.id}
    started = time.monotonic()
    for _ in range(handshakes):
        joiner = fleet.nodes(1, options=FAST)[0]
        admin.connect(joiner)
        for _attempt in range(10):
            ticket = admin.call("hive-invite")["ticket"]
            try:
                out = joiner.rpc.call("hive-join", {"ticket": ticket, "timeout": 10})
            except RpcError:
                out = {}
            if out.get("state") == "joined":
                joined.add(joiner.id)
                break
            if admin.dead():
                admin.revive()
    acknowledged = set()
    for _ in range(intents):
        target = "02" + secrets.token_hex(32)
        try:
            out = admin.call("hive-intent", {"type": "channel_open", "target": target,
                                             "amount_sat": 100_000})
        except RuntimeError:
            continue                                    # refused with the plugin alive
        acknowledged.add(out["intent_id"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:               # the ticks run them, crashing
        if admin.dead():
            admin.revive()
        states = {i["intent_id"]: i["state"] for i in admin.call("hive-intents")["intents"]}
        if all(states.get(i) in FINAL for i in acknowledged):
            break
        time.sleep(0.5)
    os.environ["HIVE_CRASH_RATE"] = "0"
    admin.revive()                                     # a last restart: reconciliation
    members = {m["peer_id"] for m in admin.call("hive-members")["members"]}
    points = collections.Counter(Path(crash_log).read_text().split()) \
        if os.path.exists(crash_log) else collections.Counter()
    return {"seconds": time.monotonic() - started, "intents": len(acknowledged),
            "handshakes": handshakes, "joined": len(joined), "restarts": admin.restarts,
            "kills": sum(points.values()), "kill_points": dict(points),
            "members_missing": sorted(joined - members), **_db_checks(db_path, acknowledged)}
