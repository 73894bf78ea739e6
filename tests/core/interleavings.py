"""The protocol's schedules, explored: a hypothesis rule-based state machine over three whole
nodes (real handlers, SQLite and signatures; see hive_sides) joined by a network the
schedule controls. Its steps: announce a channel open, deliver any in-flight message (in
any order: reordering), drop one, duplicate one, let time pass, tick a node, crash and
restart a node (only SQLite survives), and heal (everything delivered, anti-entropy, enough
ticks). After every step: at most one member executes per target and lock window, no
member executes an intent past its window, none executes twice, every machine is in a
declared state; after healing, every node has the same members and the same fleet hash.

    python -m tests.core.interleavings [--examples 200] [--steps 40]   # prints what it explored
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from pyln.client import RpcException
from structlog.testing import capture_logs

from handlers.frame.clock import ManualClock
from handlers.hivemap import gossip
from handlers.hivemap.rules import fleet_hash
from handlers.intents import acks
from handlers.intents import execution
from handlers.intents import locks as intents
from machines import SPECS
from storage import hive as hive_store
from storage import hivemap, machine_rows, transition_log
from storage import intents as store
from tests.core.hive_sides import Side, form_hive

NAMES = ("a", "b", "c")
TARGETS = ("03" + "5a" * 32, "02" + "6b" * 32)
START = 1_700_000_000.0
STEPS_OF_TIME = (1, 7, 30, 61, 300, 601)      # around the default hold (60) and expiry (600)
EXPLORED = {"schedules": 0, "steps": 0, "executions": 0, "crashes": 0}
_TEMPLATE: dict = {}


def _template() -> Path:
    """A formed hive of three, made once and copied for every schedule."""
    if "dir" not in _TEMPLATE:
        d = Path(tempfile.mkdtemp(prefix="hive-interleave-"))
        with capture_logs():
            sides = [Side(n, d, ManualClock(START)) for n in NAMES]
            form_hive(*sides)
        for s in sides:
            s.db.checkpoint()
            s.close()
        _TEMPLATE["dir"] = d
    return _TEMPLATE["dir"]


class Interleavings(RuleBasedStateMachine):
    KIND = "channel_open"       # a money-moving intent: the majority-acknowledged lock

    def __init__(self):
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="hive-schedule-"))
        shutil.copytree(_template(), self.dir, dirs_exist_ok=True)
        self.clock = ManualClock(START)
        self._logs = capture_logs()
        self._logs.__enter__()                 # the nodes' log lines are not the point here
        self.sides = [Side(n, self.dir, self.clock, existing=True) for n in NAMES]
        for s in self.sides:
            s.lightning.connected = {o.node_id for o in self.sides if o is not s}
        self.net: list[tuple[int, int, str]] = []   # in flight: (from, to, message)
        EXPLORED["schedules"] += 1

    # -- the network ----------------------------------------------------------------------
    def _collect(self) -> None:
        for i, s in enumerate(self.sides):
            for j, o in enumerate(self.sides):
                if i != j:
                    self.net += [(i, j, m) for m in s.outgoing(o)]

    def _deliver(self, k: int, keep: bool) -> None:
        i, j, msg = self.net[k] if keep else self.net.pop(k)
        self.sides[j].receive(self.sides[i], msg)

    def _step(self) -> None:
        self._collect()
        EXPLORED["steps"] += 1

    # -- steps ----------------------------------------------------------------------------
    @rule(node=st.integers(0, 2), on=st.sampled_from(TARGETS))
    def announce(self, node, on):
        try:
            intents.announce(self.sides[node].ctx, self.KIND, on,
                             100_000 if self.KIND == "channel_open" else None)
        except RpcException:
            pass                      # held, or our word given elsewhere: refused as designed
        self._step()

    @rule(pick=st.integers(0, 10**6))
    def deliver(self, pick):
        if self.net:
            self._deliver(pick % len(self.net), keep=False)
        self._step()

    @rule(pick=st.integers(0, 10**6))
    def drop(self, pick):
        if self.net:
            self.net.pop(pick % len(self.net))
        self._step()

    @rule(pick=st.integers(0, 10**6))
    def duplicate(self, pick):
        if self.net:
            self._deliver(pick % len(self.net), keep=True)
        self._step()

    @rule(seconds=st.sampled_from(STEPS_OF_TIME))
    def advance(self, seconds):
        self.clock.advance(seconds)
        self._step()

    @rule(node=st.integers(0, 2))
    def tick(self, node):
        s = self.sides[node]
        s.dispatcher.fire_due()
        execution.on_tick(s.ctx)
        gossip.on_tick(s.ctx)
        self._step()

    @rule(node=st.integers(0, 2))
    def crash_and_restart(self, node):
        s = self.sides[node]
        s.restart(self.clock)
        execution.reconcile(s.ctx)
        EXPLORED["crashes"] += 1
        self._step()

    @rule()
    def heal(self):
        self._heal()
        self._agreement()
        self._step()

    def _heal(self) -> None:
        """Every message delivered, anti-entropy on every link, until nothing moves."""
        for _ in range(3):
            self.clock.advance(self.sides[0].config.sync_interval + 1)
            for s in self.sides:
                s.dispatcher.fire_due()
                execution.on_tick(s.ctx)
                gossip.on_tick(s.ctx)
                for o in self.sides:
                    if o is not s:
                        gossip.on_member_connected(s.ctx, o.node_id)
            self._collect()
            for _ in range(20):
                if not self.net:
                    break
                while self.net:
                    self._deliver(0, keep=False)
                self._collect()

    def _agreement(self) -> None:
        members = {tuple(sorted((m["peer_id"], m["tier"])
                                for m in hive_store.members(s.db.conn())))
                   for s in self.sides}
        assert len(members) == 1, members
        hashes = {fleet_hash(e["state"] for e in hivemap.all_entries(s.db.conn()))
                  for s in self.sides}
        assert len(hashes) == 1, hashes

    # -- invariants -----------------------------------------------------------------------
    def _executions(self) -> list[dict]:
        out = []
        for s in self.sides:
            conn = s.db.conn()
            for r in store.listing(conn):
                if r["data"].get("role") != "local":
                    continue
                starts = [t["at"] for t in transition_log.for_instance(conn, "intent_lock",
                                                                       r["lock_id"])
                          if t["trigger"] == "start_execution"]
                if starts:
                    intent = r["data"]["intent"]
                    out.append({"lock": r["lock_id"], "target": r["target"], "starts": starts,
                                "from": intent["created_at"],
                                "until": r["data"]["expires_at"]})
        return out

    @invariant()
    def at_most_one_executes_per_target_and_window(self):
        done = self._executions()
        EXPLORED["executions"] = max(EXPLORED["executions"], len(done))
        for e in done:
            assert len(e["starts"]) == 1, f"{e['lock']} executed {len(e['starts'])} times"
            assert e["starts"][0] < e["until"], f"{e['lock']} executed past its window"
        for x in done:
            for y in done:
                if x is not y and x["target"] == y["target"]:
                    assert x["until"] <= y["from"] or y["until"] <= x["from"], \
                        f"{x['lock']} and {y['lock']} both executed in one lock window"

    @invariant()
    def every_machine_is_in_a_declared_state(self):
        for s in self.sides:
            for kind, instance, state, _ in machine_rows.versions(s.db.conn()):
                assert state in SPECS[kind].states, (kind, instance, state)

    def teardown(self):
        try:
            self._heal()
            self._agreement()
        finally:
            for s in self.sides:
                s.close()
            self._logs.__exit__(None, None, None)
            shutil.rmtree(self.dir, ignore_errors=True)


class HoldOnly(Interleavings):
    """The seed's hold-only lock (what an intent recorded before majority acknowledgements
    still follows): the explorer must find the schedule in which both sides of a slow link
    execute, or its invariant could not fail. Every intent type needs a majority now, so
    this variant turns that rule off for its own run."""

    def __init__(self):
        self._needs_majority = acks.needs_majority
        acks.needs_majority = lambda _intent_type: False
        super().__init__()

    def teardown(self):
        try:
            super().teardown()
        finally:
            acks.needs_majority = self._needs_majority


def explore(examples: int, steps: int, machine=Interleavings):
    """The state machine as a test case with these bounds."""
    machine.TestCase.settings = settings(
        max_examples=examples, stateful_step_count=steps, deadline=None, database=None,
        suppress_health_check=list(HealthCheck))
    return machine.TestCase


def main(argv=None) -> int:
    import unittest
    p = argparse.ArgumentParser(description="explore the intent protocol's schedules")
    p.add_argument("--examples", type=int, default=200)
    p.add_argument("--steps", type=int, default=40)
    a = p.parse_args(argv)
    result = unittest.TextTestRunner(stream=sys.stderr, verbosity=0).run(
        unittest.defaultTestLoader.loadTestsFromTestCase(explore(a.examples, a.steps)))
    sys.stdout.write(f"schedules explored {EXPLORED['schedules']:,}, steps "
                     f"{EXPLORED['steps']:,}, crash-restarts {EXPLORED['crashes']:,}, most "
                     f"executions in one schedule {EXPLORED['executions']}; invariant "
                     f"violations {len(result.failures) + len(result.errors)}\n")
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
