"""The scale simulation's invariants on a small fleet (tests/sim: real handlers, real
SQLite, real signatures, a simulated network): every scenario converges within a bounded
number of sync intervals, every node ends with the same view, no node holds a state its
member did not sign or a version its member never published. Timing is not asserted (that
is bench/fleet_sim.py)."""
import pytest

from handlers.hivemap import gossip
from handlers.wire import signing
from handlers.wire.framing import MsgType, encode
from storage import hivemap
from tests.sim import scenarios
from tests.sim.fleet import SimFleet

N = 7


@pytest.fixture(scope="module")
def fleet():
    f = SimFleet(N, seed=3)
    f.run(f.config.sync_interval)
    yield f
    f.close()


def _honest(fleet) -> None:
    """Each node holds only states signed by their member, none newer than the member's own."""
    by_id = {n.node_id: n for n in fleet.nodes}
    for node in fleet.nodes:
        for e in hivemap.all_entries(node.db.conn()):
            peer = e["state"]["peer_id"]
            assert signing.verify(node.lightning, peer, fleet.hive_id, "STATE", e["state"],
                                  e["sig"])
            assert e["state"]["version"] <= by_id[peer].held(peer)[0]


def test_a_steady_fleet_stays_level_and_sends_the_same_each_interval(fleet):
    first, second = scenarios.steady(fleet), scenarios.steady(fleet)
    assert first["level"] and second["level"]
    # one heartbeat each to every other member, and a STATE_HASH per sync interval to
    # SYNC_FANOUT members (not to every member: the cost per member does not grow with N)
    per_interval = fleet.config.heartbeat_interval // fleet.config.sync_interval
    assert second["by_type"]["GOSSIP"] == N * (N - 1)
    assert second["by_type"]["STATE_HASH"] == N * gossip.SYNC_FANOUT * per_interval
    _honest(fleet)


@pytest.mark.parametrize("scenario", ["one_change", "partition", "loss"])
def test_every_scenario_converges_within_two_sync_intervals(fleet, scenario):
    result = getattr(scenarios, scenario)(fleet, limit=4)
    assert result["converged"] and result["rounds"] <= 2
    # Every view is the same once the states made just before the end (heartbeats still
    # settling, which anti-entropy leaves to GOSSIP for SETTLE_SECONDS) are compared too.
    fleet.run(fleet.config.sync_interval)
    assert fleet.level()
    _honest(fleet)


def test_the_network_loses_duplicates_and_cuts_as_told(fleet):
    a, b = fleet.nodes[0], fleet.nodes[1]
    net = fleet.network
    net.partition([a.node_id], [n.node_id for n in fleet.nodes[1:]])
    assert b.node_id not in a.lightning.connected
    with pytest.raises(Exception, match="not connected"):
        a.lightning.call("sendcustommsg", {"node_id": b.node_id, "msg": "00"})
    net.heal()
    assert b.node_id in a.lightning.connected
    delivered = []
    b_receive, b.receive = b.receive, lambda src, msg: delivered.append(msg)
    try:
        net.duplicate = 1.0
        msg = encode(MsgType.STATE_HASH, {"hash": "00" * 32, "count": 0})
        net.send(a.node_id, b.node_id, msg)
        fleet.run(1)
        assert delivered.count(msg) == 2        # (healing made its own STATE_HASH too)
        net.duplicate, net.loss = 0.0, 1.0
        net.send(a.node_id, b.node_id, msg)
        fleet.run(1)
        assert delivered.count(msg) == 2
    finally:
        net.duplicate, net.loss, b.receive = 0.0, 0.0, b_receive
