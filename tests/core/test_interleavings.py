"""The intent protocol's schedules, explored over three nodes (tests/core/interleavings.py):
deliver, drop, duplicate, reorder, time, ticks, crash and restart, with the invariants
checked after every step. A bounded run here; `python -m tests.core.interleavings` runs
more and prints how many schedules it explored."""
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from tests.core.interleavings import EXPLORED, TARGETS, HoldOnly, Interleavings


def test_explored_schedules_keep_every_invariant():
    before = dict(EXPLORED)
    run_state_machine_as_test(Interleavings, settings=settings(
        max_examples=12, stateful_step_count=25, deadline=None, database=None,
        suppress_health_check=list(HealthCheck)))
    assert EXPLORED["schedules"] - before["schedules"] >= 12
    assert EXPLORED["steps"] - before["steps"] >= 12


def _slow_link(machine):
    """Two members announce on one target, hear nothing of each other, and tick past
    the hold."""
    machine.announce(0, TARGETS[0])
    machine.announce(1, TARGETS[0])
    machine.advance(61)
    machine.tick(0)
    machine.tick(1)


def test_the_invariant_catches_both_sides_executing_under_a_hold_only_lock():
    m = HoldOnly()
    try:
        _slow_link(m)
        with pytest.raises(AssertionError, match="both executed in one lock window"):
            m.at_most_one_executes_per_target_and_window()
    finally:
        m.teardown()


def test_the_same_schedule_executes_nothing_under_the_majority_lock():
    m = Interleavings()
    try:
        _slow_link(m)
        m.at_most_one_executes_per_target_and_window()
        assert m._executions() == []
        m.heal()                   # once healed, the tie-break's winner gathers a majority
        m.advance(61)
        m.tick(0)
        m.tick(1)
        m.at_most_one_executes_per_target_and_window()
        assert len(m._executions()) == 1
    finally:
        m.teardown()
