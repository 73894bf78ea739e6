"""The cl-revenue-ops and CLBoss stand-ins: answers as companions.md describes the real
plugins (errors as results, replace-the-set tags), failure modes, recorded calls."""
import threading
import time

import pytest
from pyln.client import RpcError

PEER = "02" + "ab" * 32
OTHER = "03" + "cd" * 32


@pytest.fixture
def node(standin_fleet):
    return standin_fleet.nodes(1, plugins=[], companions=["revenue_ops", "clboss"])[0]


def call_error(node, method, params=None):
    with pytest.raises(RpcError) as e:
        node.rpc.call(method, params or {})
    return e.value.error


def test_listed_under_the_real_plugins_names(node):
    names = {p["name"].rsplit("/", 1)[-1] for p in node.rpc.call("plugin", {"subcommand": "list"})["plugins"]}
    assert names == {"cl-revenue-ops.py", "clboss"}


def test_revenue_ops_v2_answers(node):
    status = node.rpc.call("revenue-status")
    assert status["status"] == "running" and status["version"] == "2.1.0"
    assert node.rpc.call("revenue-policy", {"action": "get", "peer_id": PEER})["policy"]["strategy"] == "dynamic"
    res = node.rpc.call("revenue-policy", ["set", PEER, "hive"])
    assert res["status"] == "success" and res["policy"]["strategy"] == "hive"
    assert node.rpc.call("revenue-policy", {"action": "get", "peer_id": PEER})["policy"]["strategy"] == "hive"
    # Errors are results, not JSON-RPC errors.
    bad = node.rpc.call("revenue-policy", {"action": "set", "peer_id": PEER, "strategy": "greedy"})
    assert bad["status"] == "error" and "greedy" in bad["error"]
    assert "error" in node.rpc.call("revenue-policy", {"action": "frobnicate"})
    job = node.rpc.call("revenue-rebalance", {"from_channel": "1x1x1", "to_channel": "2x2x2", "amount_sats": 5000})
    assert job["status"] == "initiated" and job["amount_sats"] == 5000
    assert "error" in node.rpc.call("revenue-rebalance", {"from_channel": "1x1x1", "to_channel": "2x2x2",
                                                          "amount_sats": 0})
    calls = node.rpc.call("revenue-standin-calls")["calls"]
    assert [c["method"] for c in calls] == ["revenue-status", "revenue-policy", "revenue-policy", "revenue-policy",
                                            "revenue-policy", "revenue-policy", "revenue-rebalance",
                                            "revenue-rebalance"]
    assert calls[2]["params"] == ["set", PEER, "hive"]


def test_revenue_ops_rate_limit_and_batch(node):
    for _ in range(10):
        assert node.rpc.call("revenue-policy", {"action": "set", "peer_id": PEER, "strategy": "passive"})["status"] == "success"
    limited = node.rpc.call("revenue-policy", {"action": "set", "peer_id": PEER, "strategy": "hive"})
    assert limited["status"] == "error" and "Rate limit" in limited["error"]
    res = node.rpc.call("revenue-policy", {"action": "batch", "updates": [
        {"peer_id": PEER, "strategy": "hive"}, {"peer_id": OTHER, "strategy": "hive"}]})
    assert res["status"] == "success" and res["updated"] == 2
    too_many = node.rpc.call("revenue-policy", {"action": "batch", "updates": [{"peer_id": PEER}] * 101})
    assert too_many["status"] == "error"


def test_revenue_ops_v3_has_no_hive_strategy(standin_fleet):
    node = standin_fleet.nodes(1, plugins=[], companions=["revenue_ops"],
                               options={"revenue-standin-version": "3.0.0"})[0]
    assert node.rpc.call("revenue-status")["version"] == "3.0.0"
    res = node.rpc.call("revenue-policy", {"action": "set", "peer_id": PEER, "strategy": "hive"})
    assert res["status"] == "error" and "hive" in res["error"]
    res = node.rpc.call("revenue-policy", {"action": "set", "peer_id": PEER, "strategy": "static", "fee_ppm": 0})
    assert res["status"] == "success" and res["policy"]["fee_ppm_target"] == 0


def test_revenue_ops_v2_without_sling_cannot_rebalance(standin_fleet):
    node = standin_fleet.nodes(1, plugins=[], companions=["revenue_ops"],
                               options={"revenue-standin-sling": False})[0]
    res = node.rpc.call("revenue-rebalance", {"from_channel": "1x1x1", "to_channel": "2x2x2", "amount_sats": 1})
    assert "sling plugin not found" in res["error"]


def test_clboss_replaces_the_whole_set(node):
    assert node.rpc.call("clboss-unmanage", {"nodeid": PEER, "tags": "lnfee,balance"}) == {}
    assert node.rpc.call("clboss-status")["unmanaged"] == {PEER: "balance, lnfee"}
    node.rpc.call("clboss-unmanage", {"nodeid": PEER, "tags": "open"})    # replaces, not adds
    assert node.rpc.call("clboss-status")["unmanaged"] == {PEER: "open"}
    node.rpc.call("clboss-unmanage", {"nodeid": PEER, "tags": ""})        # hands it back
    assert node.rpc.call("clboss-status")["unmanaged"] == {}


@pytest.mark.parametrize("tags", ["lnfee, open", "lnfee,bogus"])
def test_clboss_refuses_bad_tags_with_32602(node, tags):
    assert call_error(node, "clboss-unmanage", {"nodeid": PEER, "tags": tags})["code"] == -32602
    assert node.rpc.call("clboss-status")["unmanaged"] == {}


@pytest.mark.parametrize("method", ["clboss-ignore", "clboss-unignore", "clboss-manage", "clboss-unmanaged-list"])
def test_clboss_commands_that_do_not_exist(node, method):
    assert call_error(node, method, {"nodeid": PEER})["code"] == -32601


@pytest.mark.parametrize("prefix,method", [("revenue", "revenue-status"), ("clboss", "clboss-status")])
def test_fail_mode(node, prefix, method):
    node.rpc.call(prefix + "-standin-mode", {"mode": "fail", "code": 1234, "message": "nope"})
    err = call_error(node, method)
    assert (err["code"], err["message"]) == (1234, "nope")
    node.rpc.call(prefix + "-standin-mode", {"mode": "ok"})
    assert node.rpc.call(method)


@pytest.mark.parametrize("prefix,method", [("revenue", "revenue-status"), ("clboss", "clboss-status")])
def test_garbage_mode(node, prefix, method):
    node.rpc.call(prefix + "-standin-mode", {"mode": "garbage"})
    assert not isinstance(node.rpc.call(method), dict)


@pytest.mark.parametrize("prefix,method", [("revenue", "revenue-status"), ("clboss", "clboss-status")])
def test_slow_mode_answers_late_and_serves_meanwhile(node, prefix, method):
    node.rpc.call(prefix + "-standin-mode", {"mode": "slow", "method": method, "delay": 1.0})
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("r", node.rpc.call(method)), daemon=True)
    started = time.monotonic()
    t.start()
    t.join(0.3)
    assert t.is_alive()                                   # not yet answered
    assert node.rpc.call(prefix + "-standin-calls", {"method": method})["calls"]
    t.join(10)
    assert isinstance(box["r"], dict) and time.monotonic() - started >= 1.0


def test_per_method_mode(node):
    node.rpc.call("revenue-standin-mode", {"mode": "fail", "method": "revenue-rebalance"})
    assert node.rpc.call("revenue-status")["status"] == "running"
    assert call_error(node, "revenue-rebalance", {"from_channel": "a", "to_channel": "b", "amount_sats": 1})["code"] == -32600


@pytest.mark.parametrize("prefix,method,name", [("revenue", "revenue-status", "cl-revenue-ops.py"),
                                                ("clboss", "clboss-status", "clboss")])
def test_hang_then_die(node, prefix, method, name):
    node.rpc.call(prefix + "-standin-mode", {"mode": "hang"})
    box = {}

    def caller():
        try:
            box["result"] = node.rpc.call(method, {})
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
    assert call_error(node, method, {})["code"] == -4
    t.join(5)
    assert box == {"error": {"code": -4, "message": "Plugin terminated before replying to RPC call."}}
    node.standin.wait_for_fault("plugin-died")
    assert call_error(node, method)["code"] == -32601  # gone

