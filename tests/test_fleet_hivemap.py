"""The HiveMap on a fleet of real plugin processes: every member's state reaches every
member, views converge after a partition heals (also with lost, duplicated and reordered
messages), also after the links between two halves go down and come back (on both
backends), and the map survives a restart."""
import pytest

FAST = {"hive-tick-seconds": 1, "hive-sync-interval": 2}


def topology(node):
    return node.rpc.call("hive-topology")


def form_fleet(fleet, n):
    nodes = fleet.nodes(n, options=FAST)
    admin = nodes[0]
    for i, x in enumerate(nodes):
        for y in nodes[i + 1:]:
            fleet.connect(x, y)
    admin.rpc.call("hive-genesis", {"name": "fleet"})
    for joiner in nodes[1:]:
        ticket = admin.rpc.call("hive-invite", {})["ticket"]
        assert joiner.rpc.call("hive-join", {"ticket": ticket})["state"] == "joined"
    wait_converged(fleet, nodes, entries=n)
    return nodes


def wait_converged(fleet, nodes, entries, timeout=30):
    def same():
        views = [topology(n) for n in nodes]
        hashes = {v["fleet_hash"] for v in views}
        return len(hashes) == 1 and all(len(v["members"]) == entries for v in views)
    fleet.wait_for(same, timeout=timeout, what=f"all {len(nodes)} HiveMaps to agree")


def versions(node):
    return {m["peer_id"]: m["version"] for m in topology(node)["members"]}


def test_every_member_sees_every_members_state(fleet):
    nodes = form_fleet(fleet, 3)
    view = topology(nodes[2])
    assert {m["peer_id"] for m in view["members"]} == {n.id for n in nodes}
    assert all(m["age_seconds"] < 60 for m in view["members"])


def capacities(viewer, *members):
    caps = {m["peer_id"]: m["capacity_sat"] for m in topology(viewer)["members"]}
    return [caps[m.id] for m in members]


def _cross_links(nodes):
    a, b, c, d = nodes
    return [(x, y) for x in (a, b) for y in (c, d)]


def _split_change_heal(fleet, nodes, split, heal, converge_timeout=45):
    """Split the fleet into {a, b} and {c, d}, change a channel on each side, heal; each
    side's news stays on its side until the heal, then every view converges."""
    a, b, c, d = nodes
    before = versions(a)
    split()
    for x, y, sat in ((a, b, 1_000_000), (c, d, 2_000_000)):
        fleet.fund(x, sat + 500_000)
        x.rpc.fundchannel(y.id, sat)
    fleet.mine(6)                                     # locked in and announced
    # Both ends of each new channel must have broadcast it before the heal, or a late
    # broadcast (d's, say) can land after the views agreed and the capacities lag behind.
    fleet.wait_for(lambda: capacities(a, a, b) == [1_000_000] * 2 and
                   capacities(c, c, d) == [2_000_000] * 2, timeout=45,
                   what="both sides to broadcast their new channels during the partition")
    assert versions(a)[c.id] == before[c.id]          # the other side's news did not cross
    assert versions(c)[a.id] == before[a.id]
    heal()
    wait_converged(fleet, nodes, entries=4, timeout=converge_timeout)
    final = versions(d)
    assert final[a.id] > before[a.id] and final[c.id] > before[c.id]
    assert capacities(b, a, b, c, d) == [1_000_000, 1_000_000, 2_000_000, 2_000_000]


def _partition(fleet, nodes):
    a, b, c, d = nodes
    return lambda: fleet.network.partition([a, b], [c, d]), fleet.network.heal


def test_views_converge_after_the_halves_reconnect(fleet):
    # What a real network gives: the links between the halves go down, and come back.
    nodes = form_fleet(fleet, 4)
    links = _cross_links(nodes)
    _split_change_heal(fleet, nodes, lambda: [fleet.disconnect(x, y) for x, y in links],
                       lambda: [fleet.connect(x, y) for x, y in links])


@pytest.mark.standin_only
def test_views_converge_after_a_partition_heals(fleet):
    # Stand-in only: a partition that loses messages across while the links stay up (as
    # TCP does for a while) is the stand-in network's knob; lightningd can only disconnect
    # (the test above).
    nodes = form_fleet(fleet, 4)
    _split_change_heal(fleet, nodes, *_partition(fleet, nodes))


@pytest.mark.standin_only
def test_views_converge_with_lost_duplicated_and_reordered_messages(fleet):
    # Stand-in only: losing, duplicating and reordering messages are chaos knobs (BOLT 8
    # over TCP on lightningd delivers each message once, in order).
    nodes = form_fleet(fleet, 4)
    fleet.network.set_chaos(seed=7, drop=0.2, duplicate=0.2, reorder=True)
    # A node answers one exchange per 10 s and takes one STATE_HASH per 5 s from a peer,
    # and a fifth of every exchange's messages are lost: it may take several exchanges.
    # Seen converging 10 to 33 s after the heal on a loaded 2-core machine, and at times
    # past 45 s: a slow tail, not views that never agree.
    _split_change_heal(fleet, nodes, *_partition(fleet, nodes), converge_timeout=90)


def test_the_hivemap_survives_a_plugin_restart(fleet):
    a, b, c = form_fleet(fleet, 3)
    before = topology(b)
    b.restart()
    after = topology(b)
    assert after["fleet_hash"] == before["fleet_hash"]
    assert [m["version"] for m in after["members"]] == [m["version"] for m in before["members"]]



def test_a_rejoin_shows_in_every_topology_without_waiting_for_heartbeat_or_sync(fleet):
    # Heartbeat and periodic sync an hour apart. A node that left and comes back has a
    # state already (no "first" broadcast) and synced moments ago (no periodic STATE_HASH):
    # only the post-join exchange (its broadcast once readmitted, and each pair's fleet
    # hash once both know each other) can bring its state back to the others in time.
    slow = {"hive-tick-seconds": 1, "hive-heartbeat-interval": 3600, "hive-sync-interval": 3600}
    nodes = fleet.nodes(3, options=slow)
    for i, x in enumerate(nodes):
        for y in nodes[i + 1:]:
            fleet.connect(x, y)
    a, b, c = nodes
    a.rpc.call("hive-genesis", {"name": "slow"})
    for n, joiner in enumerate((b, c), 2):
        ticket = a.rpc.call("hive-invite", {})["ticket"]
        assert joiner.rpc.call("hive-join", {"ticket": ticket})["state"] == "joined"
        wait_converged(fleet, nodes[:n], entries=n, timeout=20)
    c.rpc.call("hive-leave")
    fleet.wait_for(lambda: all(c.id not in versions(n) for n in (a, b)), timeout=20,
                   what="a and b to forget the state of c, which left")
    ticket = a.rpc.call("hive-invite", {})["ticket"]
    assert c.rpc.call("hive-join", {"ticket": ticket})["state"] == "joined"
    wait_converged(fleet, nodes, entries=3, timeout=20)
    assert {m["peer_id"] for m in topology(b)["members"]} == {n.id for n in nodes}
