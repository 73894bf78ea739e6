"""The planner on a fleet of real plugin processes, on the stand-in and on real lightningd,
over a small public graph: members a, b, c; a has a channel to an external node x, which
has one to e, which has one to y. x is saturated (a holds 30% of it): every member's
CLBoss gets the `open` tag on x, and loses only that tag on release. e is the expansion
candidate (two hops from the fleet, two channels), and b, the richest member, is the one
that opens to it: through the operator's approval, or on its own in autonomous mode once
the feerate gate lets it."""
import pytest
from pyln.client import RpcError

from tests.fleet_helpers import form_hive

FAST = {"hive-tick-seconds": 1, "hive-intent-hold-seconds": 5,
        "hive-intent-expire-seconds": 60, "hive-planner-interval": 5,
        "hive-sync-interval": 2, "hive-planner-min-channel-sat": 100_000,
        "hive-planner-max-channel-sat": 500_000, "hive-planner-reserve-sat": 100_000}


def graph(fleet, mode="advisor", extra=None):
    """Members funded first (their first HiveMap state carries their funds), then the
    hive, then the public graph: a-x 300k, x-e 700k, e-y 400k, announced to everyone."""
    opts = {**FAST, "hive-governance-mode": mode, **(extra or {})}
    a, b, c = fleet.nodes(3, options=opts, companions=["clboss"])
    x, e, y = fleet.nodes(3, plugins=[])
    for node, sats in ((a, 1_500_000), (b, 3_000_000), (c, 800_000), (x, 2_000_000),
                       (e, 2_000_000)):
        fleet.fund(node, sats)
    form_hive(fleet, [a, b, c])
    # Another plugin's tag on x, before the planner can see x: `clboss-unmanage` replaces
    # a node's whole tag set, so a write after ours would drop our tag (a known limit).
    b.rpc.call("clboss-unmanage", {"nodeid": x.id, "tags": "lnfee"})
    for n in (a, b, c, e):
        fleet.connect(x, n)          # gossip reaches every member through x
    fleet.connect(e, y)
    # Regtest nodes announce no address (lightningd's `connect id` would find none): the
    # members reach e by hand, as a real node would by its announced address.
    for n in (a, b, c):
        fleet.connect(n, e)
    for opener, peer, sats in ((a, x, 300_000), (x, e, 700_000), (e, y, 400_000)):
        opener.rpc.fundchannel(peer.id, sats)
    fleet.mine(6)
    for n in (a, b, c):
        fleet.wait_for(lambda: len(n.rpc.listchannels()["channels"]) == 6, timeout=60,
                       what="the public graph to reach every member")
    return a, b, c, x, e, y


def plan(node):
    return node.rpc.call("hive-plan")["plan"]


def open_tag(node, target):
    return node.rpc.call("clboss-status")["unmanaged"].get(target.id)


def planned(node):
    return [p for p in node.rpc.call("hive-pending-actions")["actions"]
            if p["origin"] == "planner"]


def test_saturation_tags_each_clboss_and_the_richest_member_opens_after_approval(fleet):
    a, b, c, x, e, y = graph(fleet)
    for n in (a, b, c):
        fleet.wait_for(lambda: (plan(n) or {}).get("saturated") == [x.id] and
                       "open" in (open_tag(n, x) or ""), timeout=60,
                       what="x saturated and tagged on every member")
    assert open_tag(b, x) == "lnfee, open"
    fleet.wait_for(lambda: len(planned(b)) == 1, timeout=60, what="b to propose the open")
    # Each member's latest plan may be of a later cycle than b's proposal (b's open under
    # way changes what the next cycle proposes); whichever plan proposes, it names the same
    # assignment (determinism on one HiveMap is tested on three members in tests/core).
    plans = [plan(n) for n in (a, b, c)]
    assert {tuple((p["target"], p["assignee"]) for p in pl["proposals"]) for pl in plans} \
        - {()} == {((e.id, b.id),)}
    assert planned(a) == [] and planned(c) == []
    [act] = planned(b)
    assert (act["target"], act["amount_sat"], act["state"]) == \
        (e.id, 500_000, "awaiting_approval")
    topo = {t["peer_id"]: t for t in a.rpc.call("hive-topology")["targets"]}
    assert topo[x.id]["saturated"] is True and topo[x.id]["fleet_share_pct"] == 30.0

    b.rpc.call("hive-approve-action", {"id": act["id"]})
    fleet.wait_for(lambda: b.rpc.call("hive-action", {"id": act["id"]})["state"] == "executed",
                   timeout=60, what="the planned open to execute")
    assert [ch["peer_id"] for ch in e.rpc.listpeerchannels()["channels"]
            if ch["peer_id"] in (a.id, b.id, c.id)] == [b.id]

    # Released when the operator moves the marks above x's share: only our tag comes off.
    for n in (a, b, c):
        n.rpc.setconfig("hive-saturation-pct", 90)
        n.rpc.setconfig("hive-saturation-release-pct", 80)
    for n in (a, c):
        fleet.wait_for(lambda: open_tag(n, x) is None, timeout=60, what="x released")
    fleet.wait_for(lambda: open_tag(b, x) == "lnfee", timeout=60,
                   what="b's own tag removed, the other plugin's kept")


def test_the_feerate_gate_holds_an_autonomous_open_until_the_rate_allows(fleet):
    a, b, c, x, e, y = graph(fleet, mode="autonomous", extra={
        "hive-max-expansion-feerate-perkw": 253, "hive-autonomous-max-action-sat": 1_000_000})
    fleet.wait_for(lambda: (plan(b) or {}).get("expansion", "").startswith("held: opening "
                                                                          "feerate"),
                   timeout=60, what="the feerate gate to hold the open")
    assert planned(b) == [] and e.rpc.listpeerchannels()["channels"] == \
        [ch for ch in e.rpc.listpeerchannels()["channels"] if ch["peer_id"] in (x.id, y.id)]
    b.rpc.setconfig("hive-max-expansion-feerate-perkw", 1_000_000)
    fleet.wait_for(lambda: [p["state"] for p in planned(b)] == ["executed"], timeout=90,
                   what="the open to execute on its own")
    assert [ch["peer_id"] for ch in e.rpc.listpeerchannels()["channels"]
            if ch["peer_id"] in (a.id, b.id, c.id)] == [b.id]
    assert planned(a) == [] and planned(c) == []


def test_hive_plan_dry_run_and_bad_input(fleet):
    a, = fleet.nodes(1, options=FAST)
    form_hive(fleet, [a])
    out = a.rpc.call("hive-plan", {"dry_run": True})
    assert out["dry_run"] is True and out["skipped"] is None and out["proposals"] == []
    with pytest.raises(RpcError) as err:
        a.rpc.call("hive-plan", {"dry_run": "perhaps"})
    assert err.value.error["code"] == -32602 and "dry_run" in err.value.error["message"]
