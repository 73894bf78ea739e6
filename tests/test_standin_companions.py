"""The cl-revenue-ops and CLBoss stand-ins: answers, failure modes, recorded calls."""
import threading

import pytest
from pyln.client import RpcError

PEER = "02" + "ab" * 32


@pytest.fixture
def node(standin_fleet):
    return standin_fleet.nodes(1, plugins=[], companions=["revenue_ops", "clboss"])[0]


def call_error(node, method, params=None):
    with pytest.raises(RpcError) as e:
        node.rpc.call(method, params or {})
    return e.value.error


def test_revenue_ops_answers(node):
    status = node.rpc.call("revenue-status")
    assert status["status"] == "running" and status["version"] == "1.4.0"
    assert node.rpc.call("revenue-policy", {"action": "get", "peer_id": PEER})["strategy"] == "dynamic"
    node.rpc.call("revenue-policy", ["set", PEER, "hive"])
    assert node.rpc.call("revenue-policy", {"action": "get", "peer_id": PEER})["strategy"] == "hive"
    assert call_error(node, "revenue-policy", {"action": "set", "peer_id": PEER, "strategy": "greedy"})["code"] == -32602
    job = node.rpc.call("revenue-rebalance", {"from_channel": "1x1x1", "to_channel": "2x2x2", "amount_sats": 5000})
    assert job["status"] == "initiated" and job["amount_sats"] == 5000
    calls = node.rpc.call("revenue-standin-calls")["calls"]
    assert [c["method"] for c in calls] == ["revenue-status", "revenue-policy", "revenue-policy", "revenue-policy",
                                            "revenue-policy", "revenue-rebalance"]
    assert calls[2]["params"] == ["set", PEER, "hive"]
    assert node.rpc.call("revenue-standin-calls", {"method": "revenue-rebalance"})["calls"][0]["params"]["amount_sats"] == 5000


def test_clboss_answers(node):
    node.rpc.call("clboss-ignore", {"nodeid": PEER})
    node.rpc.call("clboss-unmanage", {"nodeid": PEER, "tags": "lnfee,open"})
    status = node.rpc.call("clboss-status")
    assert status["ignored"] == [PEER] and status["unmanaged"] == {PEER: ["lnfee", "open"]}
    node.rpc.call("clboss-unignore", {"nodeid": PEER})
    assert node.rpc.call("clboss-status")["ignored"] == []
    assert [c["method"] for c in node.rpc.call("clboss-standin-calls")["calls"]] == [
        "clboss-ignore", "clboss-unmanage", "clboss-status", "clboss-unignore", "clboss-status"]


@pytest.mark.parametrize("prefix,method", [("revenue", "revenue-status"), ("clboss", "clboss-status")])
def test_fail_mode(node, prefix, method):
    node.rpc.call(prefix + "-standin-mode", {"mode": "fail", "code": 1234, "message": "nope"})
    err = call_error(node, method)
    assert (err["code"], err["message"]) == (1234, "nope")
    node.rpc.call(prefix + "-standin-mode", {"mode": "ok"})
    assert node.rpc.call(method)


def test_per_method_mode(node):
    node.rpc.call("revenue-standin-mode", {"mode": "fail", "method": "revenue-rebalance"})
    assert node.rpc.call("revenue-status")["status"] == "running"
    assert call_error(node, "revenue-rebalance", {"from_channel": "a", "to_channel": "b", "amount_sats": 1})["code"] == -32600


@pytest.mark.parametrize("prefix,method,name", [("revenue", "revenue-status", "revenue_ops.py"),
                                                ("clboss", "clboss-ignore", "clboss.py")])
def test_hang_then_die(node, prefix, method, name):
    node.rpc.call(prefix + "-standin-mode", {"mode": "hang"})
    box = {}

    def caller():
        try:
            box["result"] = node.rpc.call(method, {"nodeid": PEER} if "ignore" in method else {})
        except RpcError as e:
            box["error"] = e.error

    t = threading.Thread(target=caller, daemon=True)
    t.start()
    t.join(0.5)
    assert t.is_alive()  # hung: no answer
    # The plugin still serves its control method, and saw the hung call.
    assert node.rpc.call(prefix + "-standin-calls", {"method": method})["calls"]
    node.standin.expect_fault("plugin-died.*" + name)
    node.rpc.call(prefix + "-standin-mode", {"mode": "die"})
    assert call_error(node, method, {"nodeid": PEER} if "ignore" in method else {})["code"] == -4
    t.join(5)
    assert box == {"error": {"code": -4, "message": "Plugin terminated before replying to RPC call."}}
    node.standin.wait_for_fault("plugin-died")
    assert call_error(node, method)["code"] == -32601  # gone
