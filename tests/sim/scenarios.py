"""The scale scenarios, shared by the benchmark (bench/fleet_sim.py, which prints them)
and the test (tests/core/test_fleet_sim.py, which asserts their invariants):

- steady: nothing changes for one heartbeat interval; the traffic that costs.
- one change: one member's capacity changes; until every node holds its new state.
- partition: a third of the fleet cut off for two sync intervals, members on both sides
  change meanwhile; from healing until every node holds every new state.
- loss: 5% of messages lost, some members change; until every node holds every change.

Each returns what it measured; convergence is checked every CHECK_EVERY simulated
seconds, up to `limit` sync intervals."""
from __future__ import annotations

import math
import time
from collections import Counter

from handlers.hivemap import gossip
from storage import hivemap
from tests.core.hivemap_fleet import entry_bytes

CHECK_EVERY = 2.0
PERIODIC = "STATE_HASH"          # sent every sync interval whatever changed


def _counted(fleet) -> Counter:
    return Counter(fleet.network.sent)


def _since(fleet, before: Counter) -> Counter:
    return fleet.network.sent - before


def steady(fleet) -> dict:
    before, t0 = _counted(fleet), time.perf_counter()
    fleet.run(fleet.config.heartbeat_interval)
    sent = _since(fleet, before)
    n = len(fleet.nodes)
    return {"messages_per_member": sum(v for k, v in sent.items() if k != "bytes") / n,
            "bytes_per_member": sent["bytes"] / n, "by_type": dict(sent),
            "level": fleet.level(), "wall_seconds": time.perf_counter() - t0}


def change(fleet, node) -> None:
    """A member's capacity doubles: a change its next tick broadcasts."""
    node.lightning.channels = [{**ch, "total_msat": ch["total_msat"] * 2}
                               for ch in node.lightning.channels]
    gossip.channels_changed(node.ctx)


def _until_level(fleet, changed, limit: int, started: float, before=None) -> dict:
    """Run until every node holds the changed members' newest states; what it took from
    `started`. `before`: the versions they held before changing, when they have yet to
    publish (each does at its own next tick)."""
    sync = fleet.config.sync_interval
    deadline = started + limit * sync

    def unpublished():
        now = fleet.latest(changed)
        return before is not None and any(now[p][0] <= before[p][0] for p in changed)
    while unpublished() and fleet.clock.now() < deadline:
        fleet.run(CHECK_EVERY)
    targets = fleet.latest(changed)
    while fleet.lacking(targets) and fleet.clock.now() < deadline:
        fleet.run(CHECK_EVERY)
    took = fleet.clock.now() - started
    done = not fleet.lacking(targets)
    return {"converged": done, "seconds": took if done else None,
            "rounds": math.ceil(took / sync) if done else None, "targets": targets}


def _differing(fleet, targets) -> int:
    """Bytes of what differed: for each node, each newest state it lacked, as it travels."""
    entries = {p: hivemap.get(node.db.conn(), p) for node in fleet.nodes
               for p in targets if node.node_id == p}
    sizes = {p: entry_bytes(e) for p, e in entries.items()}
    return sum(sizes[p] for n in fleet.nodes for p, t in targets.items()
               if (n.held(p) or (0,))[0] < t[0])


def _report(fleet, before, result, differing_bytes, t0) -> dict:
    sent = _since(fleet, before)
    repair = sum(v for k, v in sent.items() if k not in ("bytes", PERIODIC))
    # What the whole window carried but the periodic STATE_HASH (sent whatever changed);
    # other members' heartbeats falling in the window are in it too.
    repair_bytes = sent["bytes"] - _periodic_bytes(fleet, sent)
    return {**{k: v for k, v in result.items() if k != "targets"},
            "by_type": dict(sent), "repair_messages": repair,
            "repair_bytes": repair_bytes, "differing_bytes": differing_bytes,
            "level": fleet.level(), "wall_seconds": time.perf_counter() - t0}


def _periodic_bytes(fleet, sent) -> int:
    # A STATE_HASH has one size (a hash and a count): counted apart from the repair.
    from handlers.wire.framing import MsgType, encode
    one = len(encode(MsgType.STATE_HASH, {"hash": "0" * 64, "count": len(fleet.nodes)})) // 2
    return sent[PERIODIC] * one


def one_change(fleet, limit: int = 10) -> dict:
    node = fleet.nodes[len(fleet.nodes) // 2]
    before, t0, started = _counted(fleet), time.perf_counter(), fleet.clock.now()
    held = fleet.latest([node.node_id])
    change(fleet, node)
    result = _until_level(fleet, [node.node_id], limit, started, before=held)
    entry = hivemap.get(node.db.conn(), node.node_id)
    return _report(fleet, before, result, entry_bytes(entry) * (len(fleet.nodes) - 1), t0)


def partition(fleet, limit: int = 10) -> dict:
    n = len(fleet.nodes)
    cut, rest = fleet.nodes[:n // 3], fleet.nodes[n // 3:]
    fleet.network.partition([x.node_id for x in cut], [x.node_id for x in rest])
    k = max(1, n // 100)
    changed = cut[:k] + rest[:k]
    for node in changed:
        change(fleet, node)
    fleet.run(2 * fleet.config.sync_interval)
    targets = fleet.latest([x.node_id for x in changed])
    differing = _differing(fleet, targets)
    before, t0, started = _counted(fleet), time.perf_counter(), fleet.clock.now()
    fleet.network.heal()
    result = _until_level(fleet, [x.node_id for x in changed], limit, started)
    return _report(fleet, before, result, differing, t0)


def loss(fleet, rate: float = 0.05, limit: int = 10) -> dict:
    fleet.network.loss = rate
    try:
        k = max(1, len(fleet.nodes) // 100)
        changed = fleet.nodes[-k:]
        before, t0, started = _counted(fleet), time.perf_counter(), fleet.clock.now()
        ids = [x.node_id for x in changed]
        held = fleet.latest(ids)
        for node in changed:
            change(fleet, node)
        result = _until_level(fleet, ids, limit, started, before=held)
        differing = sum(entry_bytes(hivemap.get(x.db.conn(), x.node_id)) for x in changed) \
            * (len(fleet.nodes) - 1)
        return _report(fleet, before, result, differing, t0)
    finally:
        fleet.network.loss = 0.0
