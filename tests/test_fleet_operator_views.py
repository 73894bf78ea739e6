"""The operator's views through the real plugin process, on both backends: hive-status's
health page out of and in a hive, hive-events reading the transition log of a join, and
the log: readable lines in the node's log, JSON lines in hive-log-file."""
import json

import pytest
from pyln.client import RpcError

from handlers.frame import logline
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


def test_the_node_log_is_readable_and_hive_log_file_keeps_json_lines(fleet, tmp_path):
    log_file = tmp_path / "hive.jsonl"
    a, = fleet.nodes(1, options={**FAST, "hive-log-file": str(log_file)})
    a.rpc.call("hive-genesis", {"name": "logs"})
    line = fleet.wait_for(lambda: next((m for m in a.plugin_log("plugin.py") if m.startswith(
        "fsm.transition machine=member_tier ")), None), timeout=10, what="the admin's tier line")
    event, fields = logline.parse(line)
    assert (fields["instance_id"], fields["trigger"], fields["dest"]) == (a.id, "create", "admin")
    assert not any(m.startswith("{") for m in a.plugin_log("plugin.py"))

    def in_file():
        return [e for e in map(json.loads, log_file.read_text().splitlines())
                if e["event"] == "fsm.transition" and e["machine"] == "member_tier"]
    written = fleet.wait_for(in_file, timeout=10, what="the same event in hive-log-file")
    assert (written[0]["dest"], written[0]["level"], written[0]["instance_id"]) == \
        ("admin", "info", a.id)
    assert written[0]["timestamp"].endswith("Z")
