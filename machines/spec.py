"""The shape every machine is declared in: plain data, no behaviour.

Each machine module holds one literal `SPEC`; the runtime (`machines.runtime`), the
storage layer and the diagram generator all read that same object.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rule:
    """One row of a machine's table: `trigger` moves `sources` to `dest`.

    `dest=None` is an internal transition (state unchanged, still logged).
    `guards` must all hold and `unless` must all fail; both are names looked up in
    `machines.guards.GUARDS`, so the diagram shows exactly what the code checks.
    When several rules share a trigger and source, the first whose guards pass wins.
    """
    trigger: str
    sources: tuple[str, ...]
    dest: str | None
    guards: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()


@dataclass(frozen=True)
class Deadline:
    """While an instance is in `state`, `trigger` fires once `seconds` have passed.

    `seconds` is either a number or the name of a `ConfigSnapshot` field, read when
    the state is entered. With `data_key`, the instance's own data under that key comes
    first (an intent carries its initiator's timing to every node); the config field is
    the fallback. `since="created"` counts from the instance's creation
    instead of from entering the state (an intent's expiry counts from its announce).
    The deadline is a column in SQLite, so it survives a restart; the scheduler's tick
    fires the trigger, and the `deadline_passed` guard makes a stale tick harmless.
    """
    state: str
    trigger: str
    seconds: str | int
    since: str = "entered"
    data_key: str | None = None


@dataclass(frozen=True)
class MachineSpec:
    kind: str
    title: str
    states: tuple[str, ...]
    initial: str
    rules: tuple[Rule, ...]
    terminal: tuple[str, ...] = ()
    # States an instance may be created in besides `initial` (a member admitted as admin).
    entry_states: tuple[str, ...] = ()
    deadlines: tuple[Deadline, ...] = ()
    notes: tuple[str, ...] = field(default=())
    # Named sets of states that code outside the machine asks about (e.g. the intent
    # states that hold a lock), declared here so no copy of them is kept by hand.
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self):
        known = set(self.states)
        problems = []
        grouped = [n for states in self.groups.values() for n in states]
        for name in (self.initial, *self.terminal, *self.entry_states, *grouped):
            if name not in known:
                problems.append(f"unknown state {name!r}")
        seen_deadline_states = set()
        for d in self.deadlines:
            if d.state not in known:
                problems.append(f"deadline on unknown state {d.state!r}")
            if d.state in seen_deadline_states:
                problems.append(f"two deadlines on state {d.state!r}")
            seen_deadline_states.add(d.state)
            if d.since not in ("entered", "created"):
                problems.append(f"deadline since must be entered|created, not {d.since!r}")
            # The deadline must be able to fire on time alone, or every tick would retry it.
            if not any(r.trigger == d.trigger and d.state in r.sources and not r.unless
                       and set(r.guards) <= {"deadline_passed"} for r in self.rules):
                problems.append(f"deadline trigger {d.trigger!r} has no rule from {d.state!r} "
                                "guarded by deadline_passed alone")
        for r in self.rules:
            for s in r.sources:
                if s not in known:
                    problems.append(f"rule {r.trigger!r} from unknown state {s!r}")
                if s in self.terminal:
                    problems.append(f"rule {r.trigger!r} leaves terminal state {s!r}")
            if r.dest is not None and r.dest not in known:
                problems.append(f"rule {r.trigger!r} to unknown state {r.dest!r}")
        if problems:
            raise ValueError(f"machine {self.kind}: " + "; ".join(problems))

    @property
    def triggers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.trigger for r in self.rules))

    @property
    def live_states(self) -> tuple[str, ...]:
        """The states an instance can still leave: every state but the terminal ones."""
        return tuple(s for s in self.states if s not in self.terminal)

    def deadline_for(self, state: str) -> Deadline | None:
        for d in self.deadlines:
            if d.state == state:
                return d
        return None

    def creatable(self, state: str) -> bool:
        return state == self.initial or state in self.entry_states
