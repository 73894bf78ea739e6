"""The operator's views through the real plugin process, on both backends: hive-status's
health page out of and in a hive, and hive-events reading the transition log of a join."""
import pytest
from pyln.client import RpcError

from tests.fleet_helpers import form_hive

FAST = {"hive-tick-seconds": 1, "hive-sync-interval": 2}
HEALTH = {"in_hive", "members_connected", "members_total", "pending_actions_waiting",
          "oldest_member_state_age_seconds", "outbox_backlog", "outbox_oldest_age_seconds",
          "warnings"}


def test_hive_status_is_a_health_page_in_and_out_of_a_hive(fleet):
    a, b = fleet.nodes(2, options={**FAST, "hive-bridge-check-seconds": 2},
                       companions=["revenue_ops", "clboss"])
    alone = fleet.wait_for(
        lambda: (lambda s: s if all(c["detected"] for c in s["bridge"].values()) else None)(
            a.rpc.call("hive-status")), timeout=15, what="both companions detected")
    assert HEALTH <= set(alone)
    assert (alone["in_hive"], alone["members_connected"], alone["members_total"]) == (False, 0, 0)
    assert [w["code"] for w in alone["warnings"]] == ["not_in_hive"]
    form_hive(fleet, [a, b])

    def healthy():
        s = a.rpc.call("hive-status")
        return s if s["warnings"] == [] and s["oldest_member_state_age_seconds"] is not None \
            else None
    status = fleet.wait_for(healthy, timeout=20, what="a's health page without warnings")
    assert set(status) == set(alone)                    # the same shape in a hive
    assert (status["in_hive"], status["members_connected"], status["members_total"]) == \
        (True, 1, 2)
    assert type(status["oldest_member_state_age_seconds"]) is int
    b.stop()
    warned = fleet.wait_for(
        lambda: (lambda s: s if "members_disconnected" in [w["code"] for w in s["warnings"]]
                 else None)(a.rpc.call("hive-status")),
        timeout=20, what="a to warn that b is gone")
    assert warned["members_connected"] == 0


def test_hive_events_shows_a_join_newest_first_and_names_a_bad_parameter(fleet):
    a, b = form_hive(fleet, fleet.nodes(2, options=FAST))
    joined = b.rpc.call("hive-events", {"machine": "handshake_joiner"})["events"]
    assert [e["to"] for e in joined] == ["joined", "attest_sent", "hello_sent"]
    assert all(e["peer_id"] == a.id and type(e["at"]) is int for e in joined)
    tiers = a.rpc.call("hive-events", {"machine": "member_tier", "id": b.id, "limit": 1})
    assert [(e["trigger"], e["to"]) for e in tiers["events"]] == [("create", "neophyte")]
    everything = a.rpc.call("hive-events", {})["events"]
    assert [e["seq"] for e in everything] == sorted((e["seq"] for e in everything), reverse=True)
    with pytest.raises(RpcError) as e:
        a.rpc.call("hive-events", {"limit": 0})
    assert e.value.error["code"] == -32602 and e.value.error["message"].startswith("limit: ")
