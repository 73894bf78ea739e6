"""The scheduler's tick is not all-or-nothing: each tick step and each due row is isolated,
rows that cannot move are parked, and every deadline that can move fires in one tick."""
import pytest
from pyln.client import RpcError
from structlog.testing import capture_logs

from handlers.frame.dispatch import PARK_AFTER_FAILURES, Dispatcher
from handlers.frame.engine import Engine
from machines import SPECS
from machines.runtime import RUNTIMES
from machines.spec import Deadline, MachineSpec, Rule
from storage import machine_rows

OTHER = "03" + "22" * 32


def breaker_row(db, name, *, state="open", deadline=1.0, trigger="cooldown_elapsed"):
    with db.transaction() as conn:
        machine_rows.insert(conn, "circuit_breaker", name, {
            "state": state, "deadline": deadline, "deadline_trigger": trigger,
            "created_at": 0.0, "state_since": 0.0, "version": 0, "data": {}})


def open_breaker(dispatcher, name):
    dispatcher.create("circuit_breaker", name, state="closed")
    assert dispatcher.fire("circuit_breaker", name, "failure", failures=9, threshold=1).ok


def test_a_failing_tick_step_does_not_skip_the_later_ones(db, clock, config):
    engine = Engine(db, clock, lambda: config, lightning=None)
    ran = []

    def listpeerchannels_fails():
        raise RpcError("listpeerchannels", {}, {"code": -1, "message": "lightningd busy"})
    engine.on_tick += [listpeerchannels_fails, lambda: ran.append("later")]
    with capture_logs() as logs:
        engine.tick()
        engine.tick()
    assert ran == ["later", "later"]
    failed = [e for e in logs if e["event"] == "engine.tick_step_failed"]
    assert [e["failures"] for e in failed] == [1, 2]
    assert {e["log_level"] for e in failed} == {"warning"}      # lightningd's error, not ours
    assert "listpeerchannels_fails" in failed[0]["step"]


def test_a_row_in_a_state_no_longer_declared_is_parked_and_the_tick_goes_on(
        db, clock, dispatcher, config):
    breaker_row(db, "from-a-later-release", state="tripped_v2", deadline=clock.now() - 100)
    open_breaker(dispatcher, "good")
    clock.advance(config.breaker_reset_seconds)
    engine = Engine(db, clock, lambda: config, lightning=None)
    engine.dispatcher = dispatcher
    ran = []
    engine.on_tick.append(lambda: ran.append("tick work"))
    with capture_logs() as logs:
        for _ in range(PARK_AFTER_FAILURES):
            engine.tick()
    assert dispatcher.load("circuit_breaker", "good").state == "half_open"
    assert ran == ["tick work"] * PARK_AFTER_FAILURES
    row = machine_rows.load(db.conn(), "circuit_breaker", "from-a-later-release")
    assert row["state"] == "tripped_v2" and row["deadline"] is None
    assert row["data"]["parked"]["trigger"] == "cooldown_elapsed"
    assert "tripped_v2" in row["data"]["parked"]["reason"]
    parked = [e for e in logs if e["event"] == "fsm.deadline_parked"]
    assert len(parked) == 1 and parked[0]["log_level"] == "warning"
    assert machine_rows.due(db.conn(), clock.now()) == []      # no longer retried


def test_refused_rows_do_not_starve_later_deadlines(db, clock, dispatcher, config):
    for i in range(5):      # a whole batch whose trigger this release no longer declares
        breaker_row(db, f"old{i}", trigger="retired_trigger", deadline=clock.now() - 100 + i)
    open_breaker(dispatcher, "good")
    clock.advance(config.breaker_reset_seconds)
    dispatcher.fire_due(batch=5)
    assert dispatcher.load("circuit_breaker", "good").state == "half_open"
    for _ in range(PARK_AFTER_FAILURES - 1):
        dispatcher.fire_due(batch=5)
    assert machine_rows.due(db.conn(), clock.now()) == []
    assert machine_rows.load(db.conn(), "circuit_breaker", "old0")["data"]["parked"]["reason"] \
        == "refused: unknown_trigger"


def test_a_row_that_moves_again_is_not_parked(db, clock, dispatcher, config):
    breaker_row(db, "flaky", trigger="retired_trigger", deadline=clock.now() - 1)
    for _ in range(PARK_AFTER_FAILURES - 1):
        dispatcher.fire_due()
    with db.transaction() as conn:      # an operator repairs the row
        row = machine_rows.load(conn, "circuit_breaker", "flaky")
        machine_rows.update(conn, "circuit_breaker", "flaky",
                            {**row, "deadline_trigger": "cooldown_elapsed"}, row["version"])
    [out] = dispatcher.fire_due()
    assert out.dest == "half_open"
    assert "parked" not in machine_rows.load(db.conn(), "circuit_breaker", "flaky")["data"]


def test_a_deadline_armed_already_due_fires_in_the_same_tick(chain_kind, db, clock, config):
    """A row whose first deadline fired late enters a state whose deadline (counted from
    creation) has already passed: the same tick fires that one too."""
    dispatcher = Dispatcher(db, clock, lambda: config)
    dispatcher.create(chain_kind, "r1")
    clock.advance(25)
    outcomes = dispatcher.fire_due(batch=500)
    assert [(o.trigger, o.dest) for o in outcomes] == [("first", "b"), ("second", "c")]
    assert dispatcher.load(chain_kind, "r1").deadline is None


def _test_kind(monkeypatch, spec):
    monkeypatch.setitem(SPECS, spec.kind, spec)
    monkeypatch.setitem(machine_rows.MACHINE_TABLES, spec.kind, ("circuit_breakers", "name"))
    monkeypatch.delitem(RUNTIMES, spec.kind, raising=False)


@pytest.fixture
def chain_kind(monkeypatch):
    """Two deadlines counted from creation, at 10 s and 20 s."""
    spec = MachineSpec(kind="test_chain", title="chain", states=("a", "b", "c"), initial="a",
                       terminal=("c",),
                       rules=(Rule("first", ("a",), "b", guards=("deadline_passed",)),
                              Rule("second", ("b",), "c", guards=("deadline_passed",))),
                       deadlines=(Deadline("a", "first", 10, since="created"),
                                  Deadline("b", "second", 20, since="created")))
    _test_kind(monkeypatch, spec)
    yield spec.kind
    RUNTIMES.pop(spec.kind, None)


@pytest.fixture
def looping_kind(monkeypatch):
    """A machine whose deadline re-arms already due forever (a self-loop counted from
    creation): fire_due must still end."""
    spec = MachineSpec(kind="test_loop", title="loop", states=("a",), initial="a",
                       rules=(Rule("again", ("a",), "a", guards=("deadline_passed",)),),
                       deadlines=(Deadline("a", "again", 10, since="created"),))
    _test_kind(monkeypatch, spec)
    yield "test_loop"
    RUNTIMES.pop("test_loop", None)


def test_fire_due_ends_on_a_deadline_that_always_rearms_due(looping_kind, db, clock, config):
    dispatcher = Dispatcher(db, clock, lambda: config)
    dispatcher.create(looping_kind, "x")
    open_breaker(dispatcher, "good")
    clock.advance(max(11, config.breaker_reset_seconds))
    with capture_logs() as logs:
        outcomes = dispatcher.fire_due()
    loops = [o for o in outcomes if o.kind == looping_kind]
    assert 1 < len(loops) <= 10 and all(o.ok for o in loops)
    assert dispatcher.load("circuit_breaker", "good").state == "half_open"
    assert any(e["event"] == "fsm.deadline_chain_cut" for e in logs)


def test_a_failing_observer_does_not_hide_the_committed_transition(dispatcher, clock, config):
    seen = []

    def broken(outcome):
        raise KeyError("observer bug")
    dispatcher.observers += [broken, seen.append]
    open_breaker(dispatcher, "b")
    clock.advance(config.breaker_reset_seconds)
    with capture_logs() as logs:
        [out] = dispatcher.fire_due()
    assert out.dest == "half_open" and seen[-1] == out
    assert [e["log_level"] for e in logs if e["event"] == "fsm.observer_failed"] == ["error"]
