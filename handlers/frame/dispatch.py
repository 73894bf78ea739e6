"""Fires machine triggers with persistence: load the row, run the machine's table, and
commit the new state, its transition-log record and its outbound messages together.

Every transition is logged (structlog `fsm.transition`) after it commits; every refusal
(`fsm.trigger_refused`) is logged and changes nothing. Refusals are not written to the
SQLite log, so a peer sending junk cannot grow the database.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import structlog

from handlers.frame.refusals import refusal_log
from machines.runtime import Instance, Outcome, runtime_for
from storage import machine_rows, outbox, transition_log

log = structlog.get_logger("hive.fsm")

# A due row that failed on this many ticks in a row is parked (its deadline cleared).
PARK_AFTER_FAILURES = 3
# Deadlines one instance may fire in one tick: a real chain (hold elapsed, then expiry)
# is two or three links; more means a deadline that re-arms already due.
MAX_CHAIN = 8


@dataclass(frozen=True)
class Send:
    """A message to a peer, queued in the outbox only if the transition happens."""
    peer_id: str
    msg_hex: str


def _fields(inst: Instance) -> dict:
    return {"state": inst.state, "deadline": inst.deadline,
            "deadline_trigger": inst.deadline_trigger, "created_at": inst.created_at,
            "state_since": inst.state_since, "version": inst.version, "data": inst.data}


class Dispatcher:
    def __init__(self, db, clock, config: Callable[[], object]):
        self.db = db
        self.clock = clock
        self.config = config          # returns the current ConfigSnapshot
        self.observers: list[Callable[[Outcome], None]] = []   # called after each commit
        self._due_failures: dict[tuple[str, str], int] = {}     # ticks a due row failed

    def load(self, kind: str, instance_id: str) -> Instance | None:
        row = machine_rows.load(self.db.conn(), kind, instance_id)
        return None if row is None else Instance(kind, instance_id, **row)

    def create(self, kind: str, instance_id: str, *, state: str | None = None,
               data: dict | None = None, domain: dict | None = None,
               peer_id: str | None = None, sends: Iterable[Send] = (),
               context: dict | None = None) -> Instance:
        now = self.clock.now()
        inst = runtime_for(kind).create(instance_id, now, self.config(), state=state, data=data)
        with self.db.transaction() as conn:
            machine_rows.insert(conn, kind, instance_id, _fields(inst), domain)
            self._record(conn, now, inst, "create", None, peer_id, context, sends)
            outcome = Outcome(kind, instance_id, "create", source="-", dest=inst.state, ok=True)
            self._after_commit(outcome, peer_id, context)
        return inst

    def fire(self, kind: str, instance_id: str, trigger: str, *, peer_id: str | None = None,
             sends: Iterable[Send] = (), data_update: dict | None = None,
             context: dict | None = None, now: float | None = None,
             **guard_context) -> Outcome:
        """Apply `trigger`; `sends` and `data_update` take effect only if it moves.
        `now` pins the instant the rules are judged at (the one `allows` used), so slow
        work between the check and the fire cannot change the decision."""
        now = self.clock.now() if now is None else now
        sends = tuple(sends)
        with self.db.transaction() as conn:
            row = machine_rows.load(conn, kind, instance_id)
            if row is None:
                outcome = Outcome(kind, instance_id, trigger, source="-", dest="-", ok=False,
                                  refused="unknown_instance")
            else:
                inst = Instance(kind, instance_id, **row)
                expected = inst.version
                outcome = runtime_for(kind).fire(inst, trigger, now, self.config(),
                                                 peer_id=peer_id, **guard_context)
                if outcome.ok:
                    if data_update:
                        inst.data.update(data_update)
                    machine_rows.update(conn, kind, instance_id, _fields(inst), expected)
                    self._record(conn, now, inst, trigger, outcome.source, peer_id, context,
                                 sends)
                    self._after_commit(outcome, peer_id, context)
        if not outcome.ok:
            fields = dict(machine=kind, instance_id=instance_id, trigger=trigger,
                          source=outcome.source, reason=outcome.refused, context=context or {})
            if peer_id is None:
                log.info("fsm.trigger_refused", peer_id=None, **fields)
            else:       # a peer can repeat it as often as it likes
                refusal_log(log, "fsm.trigger_refused", peer_id, **fields)
        return outcome

    def allows(self, kind: str, instance_id: str, trigger: str, *,
               peer_id: str | None = None, now: float | None = None,
               **guard_context) -> bool:
        """Would `trigger` move this instance now? Runs the table on a copy and changes
        nothing, so a handler can check before doing costly or irreversible work (such as
        signing) with exactly the rules the trigger itself will apply."""
        inst = self.load(kind, instance_id)
        if inst is None:
            return False
        probe = Instance(kind, instance_id, inst.state, deadline=inst.deadline,
                         deadline_trigger=inst.deadline_trigger, created_at=inst.created_at,
                         state_since=inst.state_since, data=inst.data, version=inst.version)
        now = self.clock.now() if now is None else now
        return runtime_for(kind).fire(probe, trigger, now, self.config(),
                                      peer_id=peer_id, **guard_context).ok

    def fire_due(self, batch: int = 500) -> list[Outcome]:
        """Fire every deadline that has passed (the scheduler's tick), in bounded batches,
        until none is left that can move. A fired deadline may arm one that is already
        due (an intent whose hold elapsed long after its announce enters `committed`
        with its expiry passed): that one fires in the same call. Each row is isolated:
        one that raises or is refused is skipped for the rest of the call (so it cannot
        starve later deadlines) and parked after PARK_AFTER_FAILURES calls in a row. A
        row fires at most MAX_CHAIN times per call, so the loop always ends."""
        now = self.clock.now()
        fired: list[Outcome] = []
        chain: dict[tuple[str, str], int] = {}
        skip: set[tuple[str, str]] = set()    # did not move, or chain cut: not this call
        while True:
            due = [row for row in machine_rows.due(self.db.conn(), now,
                                                   limit=batch + len(skip))
                   if row[:2] not in skip][:batch]
            if not due:
                return fired
            for kind, instance_id, trigger in due:
                key = (kind, instance_id)
                outcome = self._fire_deadline(kind, instance_id, trigger)
                if outcome is not None:
                    fired.append(outcome)
                if outcome is None or not outcome.ok:
                    skip.add(key)
                    continue
                chain[key] = chain.get(key, 0) + 1
                if chain[key] >= MAX_CHAIN:
                    skip.add(key)
                    log.warning("fsm.deadline_chain_cut", machine=kind,
                                instance_id=instance_id, fired=chain[key])

    def _fire_deadline(self, kind: str, instance_id: str, trigger: str) -> Outcome | None:
        """One due row, contained: None when it raised. A row that keeps failing (a state
        or trigger a later release no longer declares) is parked: its deadline is
        cleared and the reason kept in its data, for the operator to look at."""
        key = (kind, instance_id)
        try:
            outcome = self.fire(kind, instance_id, trigger)
        except Exception as e:     # one bad row must not stop every deadline
            log.error("fsm.deadline_failed", machine=kind, instance_id=instance_id,
                      trigger=trigger, error=repr(e), exc_info=True)
            reason = repr(e)
            outcome = None
        else:
            if outcome.ok:
                self._due_failures.pop(key, None)
                return outcome
            reason = f"refused: {outcome.refused}"
        failures = self._due_failures[key] = self._due_failures.get(key, 0) + 1
        if failures >= PARK_AFTER_FAILURES:
            self._due_failures.pop(key, None)
            with self.db.transaction() as conn:
                parked = machine_rows.park(conn, kind, instance_id, {
                    "reason": reason, "trigger": trigger, "at": self.clock.now(),
                    "failures": failures})
            log.warning("fsm.deadline_parked", machine=kind, instance_id=instance_id,
                        trigger=trigger, reason=reason, failures=failures, parked=parked)
        return outcome

    def _record(self, conn, now, inst, trigger, source, peer_id, context, sends) -> None:
        transition_log.append(conn, at=now, kind=inst.kind, instance_id=inst.id,
                              trigger=trigger, source=source, dest=inst.state,
                              peer_id=peer_id, context=context or {})
        for send in sends:
            outbox.add(conn, peer_id=send.peer_id, msg_hex=send.msg_hex, now=now)

    def _after_commit(self, outcome: Outcome, peer_id, context) -> None:
        """Log the transition and tell observers, once it is durable."""
        def done():
            log.info("fsm.transition", machine=outcome.kind, instance_id=outcome.instance_id,
                     trigger=outcome.trigger,
                     source=None if outcome.trigger == "create" else outcome.source,
                     dest=outcome.dest, internal=outcome.internal, peer_id=peer_id,
                     context=context or {})
            for observer in self.observers:
                try:
                    observer(outcome)
                except Exception as e:   # the state change is committed
                    log.error("fsm.observer_failed", machine=outcome.kind,
                              instance_id=outcome.instance_id, error=repr(e), exc_info=True)
        self.db.after_commit(done)
