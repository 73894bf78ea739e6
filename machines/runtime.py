"""Runs a declared machine on instances, with `transitions`, and no I/O.

One shared `transitions.Machine` per kind, built once from its spec with no registered
models (the library's "static machine" pattern): an `Instance` is a plain object that
exists only while a trigger is processed, loaded from and saved to its SQLite row by the
caller. Holding a live instance therefore costs nothing between events, and thousands of
them cost only their rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transitions import Machine
from transitions.core import MachineError

from machines.guards import GUARDS
from machines.spec import MachineSpec


class Instance:
    """The model: one machine instance's state and data, detached from storage."""

    __slots__ = ("kind", "id", "state", "deadline", "deadline_trigger", "created_at",
                 "state_since", "data", "version")

    def __init__(self, kind, id, state, *, deadline=None, deadline_trigger=None,
                 created_at=0.0, state_since=0.0, data=None, version=0):
        self.kind = kind
        self.id = id
        self.state = state
        self.deadline = deadline
        self.deadline_trigger = deadline_trigger
        self.created_at = created_at
        self.state_since = state_since
        self.data = dict(data or {})
        self.version = version

    def __repr__(self):
        return f"<{self.kind} {self.id} {self.state}>"


@dataclass(frozen=True)
class Outcome:
    """What one trigger did. `refused` names why nothing changed, when nothing did."""
    kind: str
    instance_id: str
    trigger: str
    source: str
    dest: str
    ok: bool
    internal: bool = False
    refused: str | None = None   # "unknown_trigger" | "illegal" | "guard"


class Runtime:
    def __init__(self, spec: MachineSpec):
        self.spec = spec
        self._machine = Machine(
            model=None,
            name=spec.kind,
            states=list(spec.states),
            initial=spec.initial,
            transitions=[
                {"trigger": r.trigger, "source": list(r.sources), "dest": r.dest,
                 "conditions": [GUARDS[g] for g in r.guards],
                 "unless": [GUARDS[g] for g in r.unless],
                 "after": [_note_fired]}
                for r in spec.rules
            ],
            auto_transitions=False,   # they would bypass every guard
            send_event=True,
            ignore_invalid_triggers=False,
        )

    def create(self, instance_id: str, now: float, config: Any, state: str | None = None,
               data: dict | None = None) -> Instance:
        state = state or self.spec.initial
        if not self.spec.creatable(state):
            raise ValueError(f"{self.spec.kind} cannot be created in state {state!r}")
        inst = Instance(self.spec.kind, instance_id, state, created_at=now, state_since=now,
                        data=data)
        self._arm_deadline(inst, now, config)
        return inst

    def fire(self, inst: Instance, trigger: str, now: float, config: Any = None,
             **context) -> Outcome:
        """Apply `trigger` to `inst` in place; on refusal `inst` is left exactly as it was."""
        source = inst.state
        base = dict(kind=self.spec.kind, instance_id=inst.id, trigger=trigger, source=source)
        event = self._machine.events.get(trigger)
        if event is None:
            return Outcome(dest=source, ok=False, refused="unknown_trigger", **base)
        if inst.state not in self.spec.states:
            raise ValueError(f"{inst!r} holds a state its machine does not declare")
        fired: list = []      # the rule that ran, noted by its `after` callback
        try:
            ok = event.trigger(inst, now=now, _fired=fired, **context)
        except MachineError:
            return Outcome(dest=source, ok=False, refused="illegal", **base)
        if not ok:
            return Outcome(dest=source, ok=False, refused="guard", **base)
        # Internal means the rule that fired has no destination (not "the state did not
        # change"): a self-loop re-enters its state and re-arms the deadline.
        internal = fired[-1].dest is None
        if not internal:
            inst.state_since = now
            self._arm_deadline(inst, now, config)
        return Outcome(dest=inst.state, ok=True, internal=internal, **base)

    def legal_triggers(self, state: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.trigger for r in self.spec.rules if state in r.sources))

    def _arm_deadline(self, inst: Instance, now: float, config: Any) -> None:
        d = self.spec.deadline_for(inst.state)
        if d is None:
            inst.deadline = inst.deadline_trigger = None
            return
        if d.data_key is not None and d.data_key in inst.data:
            seconds = inst.data[d.data_key]
        elif isinstance(d.seconds, (int, float)):
            seconds = d.seconds
        else:
            seconds = getattr(config, d.seconds)
        start = now if d.since == "entered" else inst.created_at
        inst.deadline = start + seconds
        inst.deadline_trigger = d.trigger


def _note_fired(ev) -> None:
    ev.kwargs["_fired"].append(ev.transition)


RUNTIMES: dict[str, Runtime] = {}


def runtime_for(kind: str) -> Runtime:
    """The one shared runtime of a kind, built on first use."""
    from machines import SPECS
    rt = RUNTIMES.get(kind)
    if rt is None:
        rt = RUNTIMES[kind] = Runtime(SPECS[kind])
    return rt
