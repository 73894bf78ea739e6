"""Every rule of every declared machine, and every illegal trigger, run through the real
runtime (`transitions` underneath). The cases are enumerated from the tables, so a rule
added later is covered the day it is added."""
import dataclasses

import pytest

from guard_contexts import FAIL, PASS, context_for
from machines import SPECS
from machines.runtime import Instance, Runtime
from machines.spec import Deadline, MachineSpec, Rule

NOW = 1_000.0


class Cfg:
    """Deadline lengths, as a ConfigSnapshot provides them."""
    intent_hold_seconds = 60
    intent_expire_seconds = 600
    handshake_timeout_seconds = 30
    pending_action_expire_seconds = 3600
    oracle_deadline_seconds = 20
    breaker_reset_seconds = 45


def rule_cases():
    for kind, spec in sorted(SPECS.items()):
        for i, rule in enumerate(spec.rules):
            for source in rule.sources:
                yield pytest.param(kind, i, source, id=f"{kind}:{rule.trigger}:{source}")


def _instance(kind, state, data, deadline):
    inst = Instance(kind, "i1", state, created_at=NOW - 10, state_since=NOW - 10, data=data)
    inst.deadline = deadline
    return inst


@pytest.mark.parametrize("kind,index,source", list(rule_cases()))
def test_every_rule_moves_when_its_guards_pass(kind, index, source):
    spec = SPECS[kind]
    rule = spec.rules[index]
    # Earlier rules for the same trigger and source win when their guards pass; make
    # theirs fail first, then make this rule's own guards pass.
    data, kwargs = {}, {}
    for earlier in spec.rules[:index]:
        if earlier.trigger == rule.trigger and source in earlier.sources and earlier.guards:
            d, k, _ = context_for([g for g in earlier.guards if g not in rule.guards], FAIL, NOW)
            data.update(d)
            kwargs.update(k)
    d, k, deadline = context_for(rule.guards, PASS, NOW)
    data.update(d)
    kwargs.update(k)
    inst = _instance(kind, source, data, deadline)
    outcome = Runtime(spec).fire(inst, rule.trigger, NOW, Cfg(), **kwargs)
    assert outcome.ok, outcome
    expected = source if rule.dest is None else rule.dest
    assert inst.state == expected and outcome.dest == expected
    assert outcome.internal == (rule.dest is None)
    d = spec.deadline_for(inst.state)
    if rule.dest is None:
        assert inst.deadline == deadline          # an internal move keeps the deadline
    elif d is None:
        assert inst.deadline is None and inst.deadline_trigger is None
    else:
        start = NOW if d.since == "entered" else inst.created_at
        assert inst.deadline == start + getattr(Cfg, d.seconds)
        assert inst.deadline_trigger == d.trigger


def _siblings(spec, rule, source):
    return [r for r in spec.rules if r.trigger == rule.trigger and source in r.sources]


def guarded_cases():
    # A trigger that also has an unguarded rule from the same state always moves (the
    # breaker's counted failure); those rules are covered by the pass test above.
    for c in rule_cases():
        kind, index, source = c.values
        spec = SPECS[kind]
        if all(r.guards for r in _siblings(spec, spec.rules[index], source)):
            yield c


@pytest.mark.parametrize("kind,index,source", list(guarded_cases()))
def test_every_guarded_rule_is_refused_when_its_guards_fail(kind, index, source):
    spec = SPECS[kind]
    rule = spec.rules[index]
    siblings = _siblings(spec, rule, source)
    data, kwargs, deadline = context_for({g for r in siblings for g in r.guards}, FAIL, NOW)
    inst = _instance(kind, source, data, deadline)
    before = (inst.state, inst.deadline, dict(inst.data))
    outcome = Runtime(spec).fire(inst, rule.trigger, NOW, Cfg(), **kwargs)
    assert not outcome.ok and outcome.refused == "guard"
    assert (inst.state, inst.deadline, inst.data) == before


def illegal_cases():
    for kind, spec in sorted(SPECS.items()):
        for state in spec.states:
            legal = {r.trigger for r in spec.rules if state in r.sources}
            for trigger in spec.triggers:
                if trigger not in legal:
                    yield pytest.param(kind, state, trigger, id=f"{kind}:{trigger}@{state}")


@pytest.mark.parametrize("kind,state,trigger", list(illegal_cases()))
def test_every_illegal_trigger_is_refused_and_changes_nothing(kind, state, trigger):
    data, kwargs, deadline = context_for(list(PASS), PASS, NOW)
    inst = _instance(kind, state, data, deadline)
    before = (inst.state, inst.deadline, inst.deadline_trigger, dict(inst.data))
    outcome = Runtime(SPECS[kind]).fire(inst, trigger, NOW, Cfg(), **kwargs)
    assert not outcome.ok and outcome.refused == "illegal"
    assert (inst.state, inst.deadline, inst.deadline_trigger, inst.data) == before


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_unknown_trigger_is_refused(kind):
    inst = _instance(kind, SPECS[kind].initial, {}, None)
    outcome = Runtime(SPECS[kind]).fire(inst, "to_" + SPECS[kind].states[-1], NOW, Cfg())
    assert outcome.refused == "unknown_trigger" and inst.state == SPECS[kind].initial


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_terminal_states_accept_no_trigger(kind):
    spec = SPECS[kind]
    for state in spec.terminal:
        assert Runtime(spec).legal_triggers(state) == ()


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_every_non_initial_state_is_reachable(kind):
    spec = SPECS[kind]
    reached = {spec.initial, *spec.entry_states}
    frontier = list(reached)
    while frontier:
        state = frontier.pop()
        for r in spec.rules:
            if state in r.sources and r.dest and r.dest not in reached:
                reached.add(r.dest)
                frontier.append(r.dest)
    assert reached == set(spec.states)


def test_creation_is_limited_to_initial_and_entry_states():
    rt = Runtime(SPECS["member_tier"])
    assert rt.create("p", NOW, Cfg(), state="admin").state == "admin"
    with pytest.raises(ValueError, match="cannot be created in state 'banned'"):
        rt.create("p", NOW, Cfg(), state="banned")


@pytest.mark.parametrize("bad,message", [
    (dict(rules=(Rule("go", ("a",), "zz"),)), "unknown state 'zz'"),
    (dict(rules=(Rule("go", ("b",), "a"),), terminal=("b",)), "leaves terminal state 'b'"),
    (dict(rules=(Rule("go", ("a",), "b", guards=("quorum_reached",)),),
          deadlines=(Deadline("a", "go", 5),)), "guarded by deadline_passed alone"),
    (dict(groups={"busy": ("a", "zz")}), "unknown state 'zz'"),
])
def test_a_malformed_table_is_rejected_when_declared(bad, message):
    base = dict(kind="x", title="x", states=("a", "b"), initial="a",
                rules=(Rule("go", ("a",), "b"),))
    base.update(bad)
    with pytest.raises(ValueError, match=message):
        MachineSpec(**base)


def test_guards_named_in_tables_all_exist():
    from machines.guards import GUARDS
    named = {g for spec in SPECS.values() for r in spec.rules for g in r.guards + r.unless}
    assert named <= set(GUARDS)
    assert set(PASS) == set(GUARDS) == set(FAIL)


def unless_cases():
    for c in rule_cases():
        kind, index, source = c.values
        if SPECS[kind].rules[index].unless:
            yield c


@pytest.mark.parametrize("kind,index,source", list(unless_cases()))
def test_every_rule_is_refused_while_its_unless_holds(kind, index, source):
    spec = SPECS[kind]
    rule = spec.rules[index]
    data, kwargs, _ = context_for(rule.guards, PASS, NOW)
    udata, ukwargs, deadline = context_for(rule.unless, PASS, NOW)   # each `unless` true
    inst = _instance(kind, source, {**data, **udata}, deadline)
    # This rule alone: an earlier rule of the same trigger may take the same context
    # (autonomous within its limits is approved by the rule before the one that waits).
    alone = dataclasses.replace(spec, rules=(rule,), deadlines=())
    outcome = Runtime(alone).fire(inst, rule.trigger, NOW, Cfg(), **{**kwargs, **ukwargs})
    assert not outcome.ok and outcome.refused == "guard" and inst.state == source


def test_internal_is_read_from_the_rule_that_fired_not_from_the_table():
    """A trigger with both a self-loop (re-enters: deadline re-armed) and an internal rule
    (stays: deadline kept) from the same state: which one fired decides."""
    spec = MachineSpec(
        kind="probe", title="probe", states=("waiting", "done"), initial="waiting",
        rules=(Rule("vote", ("waiting",), "waiting", guards=("quorum_reached",)),
               Rule("vote", ("waiting",), None),
               Rule("time_up", ("waiting",), "done", guards=("deadline_passed",))),
        deadlines=(Deadline("waiting", "time_up", "intent_hold_seconds"),))
    rt = Runtime(spec)
    inst = rt.create("p1", NOW - 10, Cfg())
    armed = inst.deadline
    counted = rt.fire(inst, "vote", NOW, Cfg(), votes=1, eligible=3)      # no quorum yet
    assert counted.ok and counted.internal
    assert (inst.deadline, inst.state_since) == (armed, NOW - 10)         # untouched
    restarted = rt.fire(inst, "vote", NOW, Cfg(), votes=2, eligible=3)    # the self-loop
    assert restarted.ok and not restarted.internal
    assert (inst.deadline, inst.state_since) == (NOW + Cfg.intent_hold_seconds, NOW)


def test_a_deadline_reads_the_instances_own_seconds_before_the_config():
    spec = MachineSpec(kind="x", title="x", states=("a", "b"), initial="a",
                       rules=(Rule("go", ("a",), "b", guards=("deadline_passed",)),),
                       deadlines=(Deadline("a", "go", "intent_hold_seconds", data_key="hold"),))
    rt = Runtime(spec)
    assert rt.create("i", NOW, Cfg(), data={"hold": 7}).deadline == NOW + 7
    assert rt.create("j", NOW, Cfg()).deadline == NOW + Cfg.intent_hold_seconds
