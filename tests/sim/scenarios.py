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


def _counted(fleet) -> tuple[Counter, Counter, Counter, Counter]:
    n = fleet.network
    return Counter(n.sent), Counter(n.bytes), Counter(n.gossip_bytes), Counter(n.lost_gossip)


def _since(fleet, before) -> Counter:
    return fleet.network.sent - before[0]


def steady(fleet, window: float | None = None) -> dict:
    """Traffic per member per heartbeat interval. `window`: simulate only that many
    seconds and scale to the interval (heartbeats are spread evenly over it), for fleets
    too large to run a whole interval in a benchmark."""
    heartbeat = fleet.config.heartbeat_interval
    window = window or heartbeat
    before, t0 = _counted(fleet), time.perf_counter()
    fleet.run(window)
    sent = _since(fleet, before)
    n, scale = len(fleet.nodes), heartbeat / window
    return {"messages_per_member": sum(v for k, v in sent.items() if k != "bytes") * scale / n,
            "bytes_per_member": sent["bytes"] * scale / n, "by_type": dict(sent),
            "window": window, "level": fleet.level(settled=True), "wall_seconds": time.perf_counter() - t0}


def change(fleet, node) -> None:
    """A member's capacity doubles: a change its next tick broadcasts."""
    node.lightning.channels = [{**ch, "total_msat": ch["total_msat"] * 2}
                               for ch in node.lightning.channels]
    gossip.channels_changed(node.ctx)


def _until_level(fleet, changed, limit: int, started: float, before=None,
                 targets=None) -> dict:
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
    targets = targets or fleet.latest(changed)
    pending = fleet.lacking(targets)
    while pending and fleet.clock.now() < deadline:
        fleet.run(CHECK_EVERY)
        pending = fleet.lacking(targets, pending)
    took = fleet.clock.now() - started
    done = not pending
    return {"converged": done, "seconds": took if done else None,
            "rounds": math.ceil(took / sync) if done else None, "targets": targets}


def _differing(fleet, targets) -> int:
    """Bytes of what differed: for each node, each newest state it lacked, as it travels."""
    by_id = {n.node_id: n for n in fleet.nodes}
    sizes = {p: entry_bytes(hivemap.get(by_id[p].db.conn(), p)) for p in targets}
    total = 0
    for n in fleet.nodes:
        held = hivemap.versions(n.db.conn(), targets)
        total += sum(sizes[p] for p, t in targets.items() if held.get(p, 0) < t[0])
    return total


def _report(fleet, before, result, differing_bytes, t0, changed=None) -> dict:
    """What the window sent to bring every node level: all of it but the periodic
    STATE_HASH (sent whatever changed) and new heartbeats of members (steady traffic that
    happens to fall in the window: `steady` counts it). `changed`: the members whose
    GOSSIP counts; None: the GOSSIP of states made before the window (sends the outbox
    retried after a cut) counts."""
    sent = _since(fleet, before)
    by_type = fleet.network.bytes - before[1]
    gossip = fleet.network.gossip_bytes - before[2]
    repair = sum(v for k, v in sent.items() if k not in ("bytes", PERIODIC))
    repair_bytes = sum(v for k, v in by_type.items()
                       if k not in (PERIODIC, "GOSSIP", "GOSSIP lost"))
    if changed is not None:        # (else the GOSSIP made before the mark is in by_type)
        repair_bytes += sum(gossip[p] for p in changed)
    return {**{k: v for k, v in result.items() if k != "targets"},
            "by_type": dict(sent), "repair_messages": repair,
            "repair_bytes": repair_bytes, "differing_bytes": differing_bytes,
            "level": fleet.level(settled=True), "wall_seconds": time.perf_counter() - t0}


def one_change(fleet, limit: int = 10) -> dict:
    node = fleet.nodes[len(fleet.nodes) // 2]
    before, t0, started = _counted(fleet), time.perf_counter(), fleet.clock.now()
    held = fleet.latest([node.node_id])
    change(fleet, node)
    result = _until_level(fleet, [node.node_id], limit, started, before=held)
    entry = hivemap.get(node.db.conn(), node.node_id)
    return _report(fleet, before, result, entry_bytes(entry) * (len(fleet.nodes) - 1), t0,
                   [node.node_id])


def partition(fleet, limit: int = 10) -> dict:
    """Converged when every node holds what every member held at the heal (the changes
    and the heartbeats each side missed); what differed is all of that."""
    n = len(fleet.nodes)
    cut, rest = fleet.nodes[:n // 3], fleet.nodes[n // 3:]
    fleet.network.partition([x.node_id for x in cut], [x.node_id for x in rest])
    k = max(1, n // 100)
    changed = cut[:k] + rest[:k]
    for node in changed:
        change(fleet, node)
    fleet.run(2 * fleet.config.sync_interval)
    ids = [x.node_id for x in fleet.nodes]
    targets = fleet.latest(ids)
    differing = _differing(fleet, targets)
    before, t0, started = _counted(fleet), time.perf_counter(), fleet.clock.now()
    fleet.network.old_before = started
    try:
        fleet.network.heal()
        result = _until_level(fleet, ids, limit, started, targets=targets)
        return _report(fleet, before, result, differing, t0)
    finally:
        fleet.network.old_before = None


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
        # and the other members' heartbeats lost meanwhile, which anti-entropy repairs too
        lost = fleet.network.lost_gossip - before[3]
        differing += sum(v for p, v in lost.items() if p not in ids)
        return _report(fleet, before, result, differing, t0, ids)
    finally:
        fleet.network.loss = 0.0
