"""The bridge's detection, calls and circuit breakers, on real SQLite, real pool threads
and the companion models the stand-in plugins run; time moves only by the manual clock."""
import pytest
from structlog.testing import capture_logs

from bridge_sides import CLBOSS, REVENUE, BridgeSide
from handlers.bridge import breaker
from storage import transition_log
from tests.standin.companions.revenue_model import RevenueOps

OPTS = {"hive-breaker-failure-threshold": 3, "hive-breaker-reset-seconds": 60,
        "hive-bridge-timeout-seconds": 15, "hive-bridge-check-seconds": 30}


@pytest.fixture
def make_side(tmp_path, clock):
    made = []

    def make(name="a", **kw):
        side = BridgeSide(name, tmp_path, clock, **{**OPTS, **kw})
        made.append(side)
        return side
    yield make
    for s in made:
        s.close()


def started(side):
    side.bridge.start(side.ctx)
    side.settle()
    return side.bridge.view(side.ctx)


def companion_calls(side, prefix):
    return [m for m, _ in side.lightning.companion_calls if m.startswith(prefix)]


def test_detects_v2_with_the_hive_strategy_and_clboss(make_side):
    view = started(make_side())
    assert view[REVENUE]["detected"] and view[REVENUE]["version"] == "2.1.0"
    assert view[REVENUE]["capabilities"]["fleet_fee"] == {"strategy": "hive"}
    assert view[CLBOSS]["detected"] and view[CLBOSS]["breaker"]["state"] == "closed"


def test_detects_v3_with_static_zero(make_side):
    view = started(make_side(revenue_version="3.0.0"))
    assert view[REVENUE]["capabilities"]["fleet_fee"] == {"strategy": "static", "fee_ppm": 0}


def test_a_missing_companion_is_degraded_not_failed(make_side):
    side = make_side(revenue_version=None, clboss=False)
    with capture_logs() as logs:
        view = started(side)
    for name in (REVENUE, CLBOSS):
        assert not view[name]["detected"] and "not running" in view[name]["missing_reason"]
        assert view[name]["breaker"]["state"] == "closed"
    assert not [e for e in logs if e["log_level"] in ("warning", "error")]
    refused = []
    side.bridge.call(side.ctx, REVENUE, "revenue-status", {}, refused.append)
    assert refused[0].status == "refused" and side.lightning.companion_calls == []


@pytest.mark.parametrize("path", ["/p/cl-revenue-ops-helper.py", "/p/my-cl-revenue-ops.py",
                                  "/p/cl-revenue-ops.sh"])
def test_only_the_plugin_named_exactly_counts(make_side, path):
    side = make_side()
    side.lightning.files[REVENUE] = path
    assert not started(side)[REVENUE]["detected"]
    assert "revenue-status" not in companion_calls(side, "revenue")


def test_a_version_older_than_1_4_0_is_not_used(make_side):
    view = started(make_side(revenue_version="1.3.9"))
    assert not view[REVENUE]["detected"] and "older than 1.4.0" in view[REVENUE]["missing_reason"]


def check_round(side, clock, seconds=30):
    clock.advance(seconds)
    side.tick()


@pytest.mark.parametrize("fault", ["hang", "die", "garbage", "fail"])
def test_breaker_opens_after_the_threshold_refuses_probes_and_closes(make_side, clock, fault):
    side = make_side()
    started(side)
    side.lightning.modes[REVENUE] = fault
    with capture_logs() as logs:
        for _ in range(3):
            check_round(side, clock)                 # a health check is made
            if fault == "hang":
                check_round(side, clock, 15)         # and times out
    assert breaker.state(side.ctx, REVENUE)[0] == "open"
    view = side.bridge.view(side.ctx)[REVENUE]        # what hive-status shows the operator
    assert view["breaker"]["state"] == "open" and clock.now() - 30 <= view["breaker"]["since"] <= clock.now()
    assert view["failures"] >= 3 and view["last_error"] and view["calls"] >= 4
    opened = [e for e in logs if e["event"] == "bridge.breaker_opened"]
    assert len(opened) == 1 and opened[0]["log_level"] == "warning"
    assert not [e for e in logs if e["log_level"] == "error"]
    # Open: refused at once, nothing called, nothing logged per call.
    made = len(companion_calls(side, "revenue"))
    refused = []
    with capture_logs() as logs:
        for _ in range(5):
            side.bridge.call(side.ctx, REVENUE, "revenue-policy", {"action": "list"}, refused.append)
        check_round(side, clock, 20)
    assert [o.status for o in refused] == ["refused"] * 5
    assert len(companion_calls(side, "revenue")) == made and logs == []
    # After the reset the probe runs detection; the companion is back, so it closes.
    # The operator restarts it: lightningd answers its hung calls -4, which end late.
    side.lightning.release_hung()
    side.lightning.models[REVENUE] = RevenueOps("2.1.0")
    side.lightning.modes[REVENUE] = "ok"
    with capture_logs() as logs:
        check_round(side, clock, 40)
    assert breaker.state(side.ctx, REVENUE)[0] == "closed"
    assert [e["log_level"] for e in logs if e["event"] == "bridge.breaker_closed"] == ["info"]
    states = [r["dest"] for r in transition_log.for_instance(side.db.conn(), "circuit_breaker", REVENUE)]
    assert states[-3:] == ["open", "half_open", "closed"]


def test_a_failed_probe_opens_it_again(make_side, clock):
    side = make_side()
    started(side)
    side.lightning.modes[REVENUE] = "garbage"
    for _ in range(3):
        check_round(side, clock)
    with capture_logs() as logs:
        check_round(side, clock, 60)
    assert breaker.state(side.ctx, REVENUE)[0] == "open"
    assert not [e for e in logs if e["event"] == "bridge.breaker_opened"]
    states = [r["dest"] for r in transition_log.for_instance(side.db.conn(), "circuit_breaker", REVENUE)]
    assert states[-3:] == ["open", "half_open", "open"]


def test_an_error_inside_a_result_fails_the_call_but_not_the_companion(make_side, clock):
    side = make_side()
    started(side)
    outcomes = []
    for _ in range(4):
        side.bridge.call(side.ctx, REVENUE, "revenue-policy", {"action": "set", "peer_id": "02" + "11" * 32,
                                                               "strategy": "greedy"}, outcomes.append)
        side.settle()
    assert [o.status for o in outcomes] == ["failed"] * 4 and "greedy" in outcomes[0].error
    assert breaker.state(side.ctx, REVENUE)[0] == "closed"


def test_hung_calls_take_at_most_two_threads_per_companion(make_side, clock):
    side = make_side(**{"hive-breaker-failure-threshold": 10})
    started(side)
    side.lightning.modes[REVENUE] = "hang"
    outcomes = []
    for _ in range(4):
        side.bridge.call(side.ctx, REVENUE, "revenue-policy", {"action": "list"}, outcomes.append)
    side.settle()
    assert [o.status for o in outcomes] == ["refused", "refused"]
    assert side.lightning.hanging == 2
    clock.advance(15)
    side.tick()
    assert [o.status for o in outcomes] == ["refused", "refused", "timed_out", "timed_out"]
    # CLBoss is not held up by cl-revenue-ops' hung calls.
    side.bridge.call(side.ctx, CLBOSS, "clboss-status", {}, outcomes.append)
    side.settle()
    assert outcomes[-1].ok


def test_an_outcome_the_worker_queue_refuses_is_run_at_the_next_tick(make_side, clock):
    side = make_side()
    started(side)
    refused = []

    def full_queue(fn):                 # a bounded queue that is full right now
        refused.append(fn)
        raise RuntimeError("queue full")
    side.pool.deliver = full_queue
    outcomes = []
    side.bridge.call(side.ctx, REVENUE, "revenue-status", {}, outcomes.append)
    with side.lightning.cond:            # until the pool thread has kept it aside
        for _ in range(500):
            if side.pool._undelivered:
                break
            side.lightning.cond.wait(0.01)
    assert refused and side.pool._undelivered
    assert outcomes == []
    side.pool.deliver = side._deliver
    side.tick()
    assert [o.status for o in outcomes] == ["succeeded"]
