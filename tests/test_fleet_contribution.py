"""The contribution ledger on real plugin processes: forwards (a real payment through the
forwarding member on lightningd; on the stand-in, lightningd's forward_event pair, offered then
settled) reach the ledger of the node that forwarded them, the throttle takes the member's
channels out of the zero-fee fleet policy (setchannel restores their fees) and the release puts
them back. The fleet's teardown fails on any BROKEN log line."""
import pytest

from tests.fleet_helpers import form_hive
from tests.standin.bridge_faults import FAST

OPTS = {**FAST, "hive-contribution-min-sat": 1}
PUSH_MSAT = 100_000_000     # each peer's side of its channel, so it can pay through a (above its reserve)


def local_fees(node, peer):
    return [(c["updates"]["local"]["fee_base_msat"], c["updates"]["local"]["fee_proportional_millionths"])
            for c in node.rpc.listpeerchannels(peer.id)["channels"]]


def contribution(node, peer):
    [m] = [m for m in node.rpc.call("hive-members")["members"] if m["peer_id"] == peer.id]
    return m["contribution"]


def test_forwards_reach_the_ledger_and_the_throttle_reaches_the_fee_policy_and_lifts(fleet):
    a, b, c = fleet.nodes(3, options=OPTS, companions=["clboss"])
    for peer in (b, c):
        fleet.connect(a, peer)
        fleet.fund(a, 3_000_000)
        a.rpc.fundchannel(peer.id, 1_000_000, push_msat=PUSH_MSAT)
    fleet.mine(1)                                   # the channels lock in
    form_hive(fleet, [a, b, c])
    fleet.wait_for(lambda: local_fees(a, b) == [(0, 0)] and local_fees(a, c) == [(0, 0)],
                   timeout=15, what="the fleet's zero fees")

    fleet.forward(a, c, b, 10_000_000)              # b takes from the fleet, gives nothing
    fleet.wait_for(lambda: contribution(a, b)["throttled"], timeout=15, what="b throttled")
    assert contribution(a, b)["received_msat"] == 10_000_000      # settled counted once
    assert contribution(a, b)["ratio"] == 0.0
    assert contribution(a, c) == {**contribution(a, c), "forwarded_msat": 10_000_000,
                                  "received_msat": 0, "ratio": None, "throttled": False}
    fleet.wait_for(lambda: local_fees(a, b) not in ([(0, 0)], []), timeout=15,
                   what="b's fees handed back")
    assert local_fees(a, c) == [(0, 0)]

    fleet.forward(a, b, c, 6_000_000)               # b now carries 6/10 of what it took
    fleet.wait_for(lambda: not contribution(a, b)["throttled"], timeout=15, what="b released")
    fleet.wait_for(lambda: local_fees(a, b) == [(0, 0)], timeout=15, what="b's zero fees again")
    days = a.rpc.call("hive-contribution", {"peer_id": b.id})["days"]
    assert [(d["forwarded_msat"], d["received_msat"]) for d in days] == [(6_000_000, 10_000_000)]
    with pytest.raises(Exception, match="peer_id"):
        a.rpc.call("hive-contribution", {"peer_id": "nope"})
    assert b.rpc.call("hive-contribution", {})["days"] == []      # b forwarded nothing itself
    counts = a.rpc.call("hive-status")["contribution"]
    assert (counts["absorbed"], counts["dropped"], counts["ignored"]) == (2, 0, 0)


@pytest.mark.standin_only
def test_a_malformed_forward_event_is_ignored_and_the_plugin_carries_on(fleet):
    # Stand-in only: forward_event comes from lightningd itself (a plugin cannot emit it), so
    # a malformed one can only be injected into the stand-in.
    a, = fleet.nodes(1, options=OPTS)
    a.rpc.call("hive-genesis", {})
    a.standin.notify("forward_event", {"status": "settled", "in_channel": 5, "out_msat": -1})
    fleet.wait_for(lambda: a.rpc.call("hive-status")["contribution"]["ignored"] == 1, timeout=5,
                   what="the malformed event counted as ignored")
    counts = a.rpc.call("hive-status")["contribution"]
    assert (counts["absorbed"], counts["dropped"]) == (0, 0)
    assert any(m.startswith("contribution.event_ignored ") for m in a.plugin_log("plugin.py"))
    assert a.rpc.call("hive-contribution", {})["days"] == []     # the plugin still answers
