"""The planner's cycle against a public graph of mainnet's size, served by the stand-in.

A synthetic graph of 15,000 nodes and 50,000 channels (endpoints drawn with a heavy tail,
as the real graph's hubs; capacities from 20k to 50M sats) is loaded into one stand-in
node; five members of a fleet are nodes of that graph with their channels as their
HiveMap state. Measured in the same run, over the same RPC socket (pyln's LightningRpc,
as the plugin uses): a planner cycle (`reader.read_graph`: one `listchannels source=` per
fleet target and per probed candidate, `listnodes id=`, `feerates`; then `rules.compute`)
against a naive full `listchannels` read. Times are measured first; peak memory is
tracemalloc's in a second run of each (it slows what it traces), in this process (the
stand-in serving the answer runs here too, for both).

Prints figures; asserts nothing. Run: `python -m bench.planner [nodes] [channels]`.
"""
from __future__ import annotations

import gc
import hashlib
import random
import sys
import time
import tracemalloc

from coincurve import PrivateKey
from pyln.client import LightningRpc

from handlers.planner import reader, rules
from tests.standin.backend import StandinFleet

NODES, CHANNELS, MEMBERS = 15_000, 50_000, 5


def _node_id(i: int) -> str:
    """A real public key (lightningd and the stand-in check a node id is one)."""
    return PrivateKey(hashlib.sha256(b"bench-node-%d" % i).digest()).public_key.format().hex()


def synthetic(nodes: int, channels: int, seed: int = 15):
    """(listnodes entries, listchannels entries): every channel in both directions."""
    rng = random.Random(seed)
    ids = [_node_id(i) for i in range(nodes)]
    cum, total = [], 0.0
    for i in range(nodes):                          # a few hubs, a long tail
        total += 1.0 / (i + 1) ** 0.9
        cum.append(total)
    now = int(time.time())
    entries, made, seen = [], 0, set()
    while made < channels:
        a, b = rng.choices(range(nodes), cum_weights=cum, k=2)
        if a == b or (a, b) in seen:
            a, b = rng.randrange(nodes), rng.randrange(nodes)
            if a == b or (a, b) in seen:
                continue
        seen.add((a, b))
        sats = int(min(50_000_000, max(20_000, rng.lognormvariate(14.5, 1.2))))
        scid = f"{700_000 + made // 1000}x{made % 1000}x0"
        for d, (s, t) in enumerate(((a, b), (b, a))):
            entries.append({"source": ids[s], "destination": ids[t], "short_channel_id": scid,
                            "direction": d, "public": True, "amount_msat": sats * 1000,
                            "message_flags": 1, "channel_flags": d, "active": True,
                            "last_update": now, "base_fee_millisatoshi": 1000,
                            "fee_per_millionth": 100, "delay": 80, "htlc_minimum_msat": 1000,
                            "htlc_maximum_msat": sats * 990, "features": ""})
        made += 1
    listed = [{"nodeid": n, "last_timestamp": now, "alias": n[:12], "color": "023456",
               "features": "88a0800a8a59a1",
               "addresses": [{"type": "ipv4", "address": "10.0.0.1", "port": 9735}]}
              for n in ids]
    return listed, entries


def _fleet_states(entries, members, now):
    """Each member's HiveMap state as it would broadcast it: its channels' peers."""
    states = {m: {"peer_id": m, "version": 1, "timestamp": now, "available_sat": 5_000_000,
                  "capacity_sat": 0, "fee_policy": {"base_msat": 0, "ppm": 0}, "peers": {}}
              for m in members}
    for e in entries:
        s = states.get(e["source"])
        if s is not None:
            s["peers"][e["destination"]] = s["peers"].get(e["destination"], 0) + \
                e["amount_msat"] // 1000
            s["capacity_sat"] += e["amount_msat"] // 1000
    for s in states.values():
        s["peers"] = [{"peer_id": p, "capacity_sat": c} for p, c in sorted(s["peers"].items())]
    return list(states.values())


def _timed(fn):
    gc.collect()
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def _peak(fn) -> int:
    """Peak bytes allocated while `fn` runs (tracemalloc slows it: timed apart)."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def measure(nodes: int = NODES, channels: int = CHANNELS) -> dict:
    listed, entries = synthetic(nodes, channels)
    degree: dict[str, int] = {}
    for e in entries:
        degree[e["source"]] = degree.get(e["source"], 0) + 1
    # Members: mid-sized nodes (20 to 60 channels each), as a fleet of routing nodes.
    members = sorted(n for n, d in degree.items() if 20 <= d <= 60)[:MEMBERS]
    now = int(time.time())
    states = _fleet_states(entries, set(members), now)
    fleet = StandinFleet()
    try:
        node, = fleet.nodes(1, plugins=[])
        with node.data.lock:
            for n in listed:
                node.data.graph_nodes[n["nodeid"]] = n
        node.data.add_graph_entries(entries)
        del listed, entries
        rpc = LightningRpc(node.rpc_path)
        targets = sorted(rules.fleet_capacity(states, set(members)))
        settings = rules.Settings(20, 15, 1_000_000, 10_000_000, 500_000, 10_000, 900)

        def cycle():
            graph = reader.read_graph(rpc.call, targets, set(members), now)
            if graph.get("error"):
                raise RuntimeError("graph read failed: " + graph["error"])
            return rules.compute(members=set(members), states=states, graph=graph,
                                 previously=set(), excluded=set(), now=now,
                                 settings=settings), graph["reads"]

        def naive():
            return len(rpc.listchannels()["channels"])

        naive()                                      # warm both paths once
        cycle()
        (plan, reads), cycle_s = _timed(cycle)
        listed_n, naive_s = _timed(naive)
        cycle_peak, naive_peak = _peak(cycle), _peak(naive)
    finally:
        fleet.teardown()
    return {"nodes": nodes, "channels": channels, "directions": listed_n, "targets": len(targets),
            "reads": reads, "cycle_seconds": cycle_s, "cycle_peak": cycle_peak,
            "naive_seconds": naive_s, "naive_peak": naive_peak,
            "saturated": len(plan["saturated"]), "candidates": len(plan["candidates"]),
            "proposals": len(plan["proposals"])}


def line(r: dict) -> str:
    return (f"{r['cycle_seconds'] / r['naive_seconds']:6.2f}x  a cycle over "
            f"{r['targets']} fleet targets ({r['reads']} calls) {r['cycle_seconds'] * 1e3:,.0f} "
            f"ms, peak {r['cycle_peak'] / 2**20:.1f} MiB vs a full listchannels of "
            f"{r['nodes']:,} nodes / {r['channels']:,} channels {r['naive_seconds'] * 1e3:,.0f} "
            f"ms, peak {r['naive_peak'] / 2**20:.1f} MiB (memory "
            f"{r['cycle_peak'] / r['naive_peak']:.3f}x; lower is better)")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    result = measure(*args)
    print(line(result))
    print({k: v for k, v in result.items()})
