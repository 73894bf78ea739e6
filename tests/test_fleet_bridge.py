"""The bridge on real plugin processes: cl-hive next to the cl-revenue-ops and CLBoss
stand-ins, which hang, die mid-call, answer slowly or answer garbage. hive-status answers
throughout (it never waits on a companion); each breaker opens after the threshold,
probes, and closes after recovery; a rebalance caught in a fault ends once and is never repeated; members get zero
fees on admission with cl-revenue-ops v2, v3 or none. All on both backends: the companion
stand-ins are real plugins, loaded into real lightningd too, and their fault knobs are their
own RPC methods. The fleet's teardown fails on any BROKEN log line."""
import pytest

from tests.fleet_helpers import form_hive, rebalance_args
from tests.standin.bridge_faults import (FAST, FAULTS, companion, inject, open_and_close, recover,
                                         status_within, wait_breaker)


def events(node, event):
    return [line for line in node.plugin_lines("plugin.py")
            if line.message.startswith(event + " ")]


def test_killing_cl_revenue_ops_is_logged_once_and_the_hive_stays_up(fleet):
    a, = fleet.nodes(1, options=FAST, companions=["revenue_ops"])
    fleet.wait_for(lambda: companion(a, "revenue_ops")["detected"], timeout=15, what="detection")
    a.kill_plugin("cl-revenue-ops.py")
    wait_breaker(fleet, a, "revenue_ops", "open")
    # Several probes later (each finds it gone), still one warning.
    fleet.wait_for(lambda: len(events(a, "bridge.probe_failed")) >= 2, timeout=30, what="two probes")
    opened = events(a, "bridge.breaker_opened")
    assert len(opened) == 1 and opened[0].level == "unusual"      # structlog warning
    view = companion(a, "revenue_ops")
    assert not view["detected"] and "not running" in view["missing_reason"]
    assert status_within(a)["bridge"]["clboss"]["detected"] is False     # never there: degraded


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("which", ["revenue_ops", "clboss"])
def test_a_companion_fault_opens_its_breaker_and_recovery_closes_it(fleet, which, fault):
    a, = fleet.nodes(1, options=FAST, companions=["revenue_ops", "clboss"])
    other = "clboss" if which == "revenue_ops" else "revenue_ops"
    fleet.wait_for(lambda: companion(a, other)["detected"], timeout=15, what="detection")
    open_and_close(fleet, a, which, fault)
    assert companion(a, other)["breaker"]["state"] == "closed"          # the other is untouched
    assert len(events(a, "bridge.breaker_opened")) == 1
    assert [line.level for line in events(a, "bridge.breaker_closed")] == ["info"]
    assert companion(a, which)["detected"]


@pytest.mark.parametrize("fault", FAULTS)
def test_a_rebalance_caught_in_a_fault_ends_once_and_is_not_repeated(fleet, fault):
    opts = {**FAST, "hive-intent-hold-seconds": 5, "hive-intent-expire-seconds": 60}
    a, = fleet.nodes(1, options=opts, companions=["revenue_ops"])
    form_hive(fleet, [a])
    x, y = fleet.nodes(2, plugins=[])
    for peer in (x, y):
        fleet.fund(a, 3_000_000)
        fleet.connect(a, peer)
        a.rpc.fundchannel(peer.id, 1_000_000)
    fleet.mine(1)                                       # the channels lock in
    fleet.wait_for(lambda: companion(a, "revenue_ops")["detected"], timeout=15, what="detection")
    inject(a, "revenue_ops", fault)
    iid = a.rpc.call("hive-intent", rebalance_args(a, x, y))["intent_id"]

    def state():
        status_within(a)                               # the hive answers throughout
        [row] = [i for i in a.rpc.call("hive-intents")["intents"] if i["intent_id"] == iid]
        return row
    fleet.wait_for(lambda: state()["state"] in ("executed", "failed"), timeout=30, what="the intent to end")
    assert state()["state"] == "failed"
    recover(a, "revenue_ops", fault)
    wait_breaker(fleet, a, "revenue_ops", "closed")
    made = companion(a, "revenue_ops")["calls"]
    fleet.wait_for(lambda: companion(a, "revenue_ops")["calls"] >= made + 2, timeout=15,
                   what="two more health checks, with the intent's executor idle")
    assert state()["state"] == "failed"
    # A restarted companion (die, hang) never sees the rebalance; one fixed in place
    # (slow, garbage) saw at most the one call that failed.
    calls = a.rpc.call("revenue-standin-calls", {"method": "revenue-rebalance"})["calls"]
    assert len(calls) <= (0 if fault in ("die", "hang") else 1)


def policy(node, peer):
    return node.rpc.call("revenue-policy", {"action": "get", "peer_id": peer.id})["policy"]


def local_fees(node, peer):
    return [(c["updates"]["local"]["fee_base_msat"], c["updates"]["local"]["fee_proportional_millionths"])
            for c in node.rpc.listpeerchannels(peer.id)["channels"]]


@pytest.mark.parametrize("setup", ["v2", "v3", "none"])
def test_members_get_zero_fees_on_admission(fleet, setup):
    companions = ["clboss"] + ([] if setup == "none" else ["revenue_ops"])
    opts = {**FAST, **({"revenue-standin-version": "3.0.0"} if setup == "v3" else {})}
    a, b = fleet.nodes(2, options=opts, companions=companions)
    fleet.connect(a, b)
    fleet.fund(a, 3_000_000)
    a.rpc.fundchannel(b.id, 1_000_000)
    fleet.mine(1)                                       # the channel locks in
    a.rpc.call("clboss-unmanage", {"nodeid": b.id, "tags": "balance"})   # another plugin's tag
    assert local_fees(a, b) != [(0, 0)]
    form_hive(fleet, [a, b])
    if setup == "v2":
        fleet.wait_for(lambda: policy(a, b)["strategy"] == "hive" and policy(b, a)["strategy"] == "hive",
                       timeout=15, what="the hive strategy on both sides")
    elif setup == "v3":
        fleet.wait_for(lambda: (policy(a, b)["strategy"], policy(a, b)["fee_ppm_target"]) == ("static", 0),
                       timeout=15, what="static 0 ppm")
    else:
        fleet.wait_for(lambda: local_fees(a, b) == [(0, 0)], timeout=15, what="setchannel 0/0")
        fleet.wait_for(lambda: a.rpc.call("clboss-status")["unmanaged"].get(b.id) == "balance, lnfee",
                       timeout=15, what="CLBoss lnfee next to the other plugin's balance")
    if setup != "none":
        assert local_fees(a, b) != [(0, 0)]          # cl-revenue-ops sets fees, not us
        assert a.rpc.call("clboss-status")["unmanaged"][b.id] == "balance"
