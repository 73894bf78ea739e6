"""hive-status's health page: members connected of the total, companions and breakers,
actions waiting, the oldest member state, the outbox; a warning for each thing a person
should act on; the same keys in and out of a hive, integer ages."""
import pytest

from handlers import health
from storage import hivemap, outbox
from tests.core.hive_sides import Side, form_hive

KEYS = {"in_hive", "members_connected", "members_total", "pending_actions_waiting",
        "oldest_member_state_age_seconds", "outbox_backlog", "outbox_oldest_age_seconds",
        "warnings"}


def companion(detected=True, reason=None, breaker="closed", failures=0, error=None):
    return {"detected": detected, "missing_reason": reason, "last_error": error,
            "breaker": {"state": breaker, "consecutive_failures": failures}}


HEALTHY_BRIDGE = {"clboss": companion(), "revenue_ops": companion()}


@pytest.fixture
def sides(tmp_path, clock):
    made = [Side(name, tmp_path, clock) for name in ("a", "b", "c")]
    yield made
    for s in made:
        s.close()


def codes(page):
    return [w["code"] for w in page["warnings"]]


def check(side, connected=(), bridge=HEALTHY_BRIDGE, counts=None):
    page = health.health(side.ctx, connected=set(connected), bridge=bridge,
                         machine_counts=counts or {})
    assert set(page) == KEYS and all(set(w) == {"code", "message"} for w in page["warnings"])
    return page


def give_states(viewer, members, clock, age=0):
    """Store a HiveMap state of each member at `viewer` (unsigned: storage takes it as is)."""
    with viewer.db.transaction() as conn:
        for m in members:
            state = {"peer_id": m.node_id, "version": 1, "timestamp": int(clock.now()) - age,
                     "capacity_sat": 0}
            hivemap.put_if_newer(conn, state, "sig-" + m.node_id[:8], clock.now())


def test_outside_a_hive_the_same_keys_and_one_hint(sides):
    page = check(sides[0], connected=[sides[1].node_id])
    assert (page["in_hive"], page["members_connected"], page["members_total"]) == (False, 0, 0)
    assert page["oldest_member_state_age_seconds"] is None
    assert codes(page) == ["not_in_hive"]


def test_a_healthy_hive_has_no_warning(sides, clock):
    a, b, c = sides
    form_hive(a, b, c)
    give_states(a, sides, clock, age=30)
    page = check(a, connected=[b.node_id, c.node_id, "02" + "99" * 32])
    assert (page["in_hive"], page["members_connected"], page["members_total"]) == (True, 2, 3)
    assert page["oldest_member_state_age_seconds"] == 30
    assert type(page["oldest_member_state_age_seconds"]) is int
    assert (page["outbox_backlog"], page["pending_actions_waiting"]) == (0, 0)
    assert page["warnings"] == []


def test_disconnected_members_and_stale_or_missing_states_are_warned(sides, clock):
    a, b, c = sides
    form_hive(a, b, c)
    give_states(a, [a, b], clock)               # nothing from c
    page = check(a, connected=[b.node_id])
    assert page["members_connected"] == 1
    assert codes(page) == ["members_disconnected", "stale_member_state"]
    assert "1 of 2 other members" in page["warnings"][0]["message"]
    give_states(a, [c], clock)
    assert codes(check(a, connected=[b.node_id, c.node_id])) == []
    clock.advance(2 * a.config.heartbeat_interval + 1)
    page = check(a, connected=[b.node_id, c.node_id])
    assert codes(page) == ["stale_member_state"]
    assert page["oldest_member_state_age_seconds"] == 2 * a.config.heartbeat_interval + 1
    assert "3 member(s)" in page["warnings"][0]["message"]


def test_companions_breakers_and_waiting_actions_are_warned(sides, clock):
    a, b, _ = sides
    form_hive(a, b)
    give_states(a, [a, b], clock)
    bridge = {"clboss": companion(False, "not running"),
              "revenue_ops": companion(breaker="open", failures=3, error="timed out"),
              "later": companion(False, "not checked yet")}     # still starting: not yet
    page = check(a, connected=[b.node_id], bridge=bridge,
                 counts={"pending_action": {"awaiting_approval": 2, "executed": 5}})
    assert codes(page) == ["companion_missing", "breaker_open", "actions_waiting"]
    assert page["pending_actions_waiting"] == 2
    assert "clboss not available (not running)" in page["warnings"][0]["message"]
    assert "open after 3 failed calls (last error: timed out)" in page["warnings"][1]["message"]


def test_an_outbox_backlog_is_warned_by_size_or_by_age(sides, clock):
    a, b, _ = sides
    form_hive(a, b)
    give_states(a, [a, b], clock)
    with a.db.transaction() as conn:
        outbox.add(conn, peer_id=b.node_id, msg_hex="00", now=clock.now())
    page = check(a, connected=[b.node_id])
    assert (page["outbox_backlog"], page["outbox_oldest_age_seconds"], codes(page)) == (1, 0, [])
    clock.advance(health.OUTBOX_AGE_WARN_SECONDS)
    give_states(a, [a, b], clock)       # fresh states: only the outbox is old
    page = check(a, connected=[b.node_id])
    assert codes(page) == ["outbox_backlog"]
    assert page["outbox_oldest_age_seconds"] == health.OUTBOX_AGE_WARN_SECONDS
    with a.db.transaction() as conn:
        for _ in range(health.OUTBOX_BACKLOG_WARN - 1):
            outbox.add(conn, peer_id=b.node_id, msg_hex="00", now=clock.now())
        for row in outbox.due(conn, float("inf"), limit=1):
            outbox.mark_sent(conn, row["seq"], clock.now())      # the old one went
    page = check(a, connected=[b.node_id])
    assert page["outbox_backlog"] == health.OUTBOX_BACKLOG_WARN - 1
    assert codes(page) == []
    with a.db.transaction() as conn:
        outbox.add(conn, peer_id=b.node_id, msg_hex="00", now=clock.now())
    assert codes(check(a, connected=[b.node_id])) == ["outbox_backlog"]
