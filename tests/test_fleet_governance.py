"""Governance on real plugin processes: in advisor mode an operator proposes a channel
open, approves it, and the channel opens through an intent lock; a second proposal is
rejected. A subscriber plugin next to cl-hive receives every step as the custom
notifications lightningd forwards (origin `plugin.py`, params `{topic: action}`). Bad
input is answered with errors naming the parameter, and approving twice is refused."""
import pytest
from pyln.client import RpcError

from handlers.frame import errors
from tests.fleet_helpers import form_hive
from tests.standin.backend import HIVE_PLUGIN, STANDIN_DIR

LISTENER = STANDIN_DIR / "listener_plugin.py"
FAST = {"hive-tick-seconds": 1, "hive-intent-hold-seconds": 5,
        "hive-intent-expire-seconds": 60}


def heard(node, action_id):
    return [(r["topic"], r["origin"], r["payload"]["state"])
            for r in node.rpc.call("listener-received")["received"]
            if r["payload"]["id"] == action_id]


def test_proposed_approved_executed_and_every_step_notified(fleet):
    a, = fleet.nodes(1, options=FAST, plugins=[HIVE_PLUGIN, LISTENER])
    form_hive(fleet, [a])
    x, y = fleet.nodes(2, plugins=[])
    fleet.fund(a, 3_000_000)
    fleet.connect(a, x)
    act = a.rpc.call("hive-propose-action", {"kind": "channel_open", "target": x.id,
                                             "amount_sat": 1_000_000, "reason": "demo"})
    assert (act["state"], act["mode"]) == ("awaiting_approval", "advisor")
    fleet.wait_for(lambda: len(heard(a, act["id"])) == 2, timeout=10, what="two notifications")
    pending = a.rpc.call("hive-pending-actions", {"state": "awaiting_approval"})["actions"]
    assert [p["id"] for p in pending] == [act["id"]]

    a.rpc.call("hive-approve-action", {"id": act["id"]})
    with pytest.raises(RpcError, match="only an action awaiting approval can be approved") as e:
        a.rpc.call("hive-approve-action", {"id": act["id"]})
    assert e.value.error["code"] == errors.ACTION_NOT_PENDING
    fleet.wait_for(lambda: a.rpc.call("hive-action", {"id": act["id"]})["state"] == "executed",
                   timeout=30, what="the action to execute")
    assert [c["peer_id"] for c in x.rpc.listpeerchannels()["channels"]] == [a.id]
    assert heard(a, act["id"]) == [
        ("hive_action_proposed", "plugin.py", "awaiting_approval"),
        ("hive_action_awaiting_approval", "plugin.py", "awaiting_approval"),
        ("hive_action_decided", "plugin.py", "approved"),
        ("hive_action_finished", "plugin.py", "executed")]
    lock_id = a.rpc.call("hive-action", {"id": act["id"]})["lock_id"]
    assert [i["state"] for i in a.rpc.call("hive-intents")["intents"]
            if i["lock_id"] == lock_id] == ["executed"]

    no = a.rpc.call("hive-propose-action", {"kind": "clboss_ignore", "target": y.id})
    assert a.rpc.call("hive-reject-action", {"id": no["id"], "reason": "no"})["state"] == "rejected"
    fleet.wait_for(lambda: len(heard(a, no["id"])) == 3, timeout=10, what="the rejection")
    assert heard(a, no["id"])[-1] == ("hive_action_decided", "plugin.py", "rejected")


def test_bad_operator_input_names_the_parameter(fleet):
    a, = fleet.nodes(1, options=FAST)
    form_hive(fleet, [a])
    for method, params, message in (
            ("hive-propose-action", {"kind": "ban_peer", "target": a.id}, "kind: expected one of"),
            ("hive-propose-action", {"kind": "channel_open", "target": "x", "amount_sat": 5},
             "target: expected a node id"),
            ("hive-propose-action", {"kind": "channel_open", "target": a.id},
             "amount_sat: a positive integer is required"),
            ("hive-approve-action", {"id": "nope"}, "id: no action nope"),
            ("hive-reject-action", {"id": "nope"}, "id: no action nope"),
            ("hive-action", {"id": "nope"}, "id: no action nope"),
            ("hive-pending-actions", {"state": "pending"}, "state: expected one of"),
            ("hive-intent", {"type": "ban_peer", "target": a.id}, "type: expected one of")):
        with pytest.raises(RpcError) as e:
            a.rpc.call(method, params)
        assert e.value.error["code"] == -32602 and e.value.error["message"].startswith(message), \
            (method, e.value.error)
    assert a.rpc.call("hive-pending-actions")["actions"] == []
