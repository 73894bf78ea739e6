"""A fleet of N members simulated in one process (tests/sim): the real handlers on real
SQLite, a manual clock, a simulated network (delay 50-150 ms, in order per link), every
member connected to every other (the protocol's topology: GOSSIP goes to the connected
members and is never relayed), signatures real secp256k1 as lightningd makes them. The
hive is formed by seeding (the admin's real signatures), not by N handshakes.

Scenarios and figures (tests/sim/scenarios.py): steady state over one heartbeat interval
(messages and bytes per member; above STEADY_FULL members over one sync interval, scaled);
one member's state changes; a third of the fleet cut off for two sync intervals with
changes on both sides, then healed; 5% message loss. For each: seconds and sync intervals
("rounds") to converge, and the bytes sent meanwhile (all but the periodic STATE_HASH and
the heartbeats made meanwhile) against the bytes of the states that differed (for the
heal, every state a side missed; under loss, the changes and the heartbeats lost). Goals:
converged within two sync intervals of healing; at most 2x the differing bytes; per-member
traffic no more than linear in N. "level" is whether every node's view is the same as a
STATE_HASH sent at the scenario's end compares it (each member's newest state made 10 s
before: at 1,000 members about 3.3 heartbeats a second are always on their way, so whole
views are seldom all the same at one instant). The run repeats: one seeded generator draws
the delays, losses, the order of a healed cut's reconnections and the sync phases.
Prints figures; asserts nothing. N = 1,000 handles about 1.4 million messages through the
real handlers (about 8 CPU minutes on a 2-core VM).
Run: `python -m bench.fleet_sim [N ...]` (default 10 100 1000).
"""
from __future__ import annotations

import gc
import logging
import sys
import time

from handlers.frame import logs
from tests.sim import scenarios
from tests.sim.fleet import SimFleet

STEADY_FULL = 100    # above this, the steady state is measured over one sync interval


def run(n: int) -> dict:
    t0, c0 = time.perf_counter(), time.process_time()
    fleet = SimFleet(n)
    formed = time.perf_counter() - t0
    # The formed fleet (a thousand nodes' handlers, caches and connections) is never
    # garbage: kept out of the collector's scans, which otherwise grow with the heap.
    gc.freeze()
    # Everyone's first sync (the seeded fleet is level already: above STEADY_FULL, one
    # tick is enough to start every node's timers).
    fleet.run(fleet.config.sync_interval if n <= STEADY_FULL else fleet.config.tick_seconds)
    # Above STEADY_FULL members the steady state is simulated over one sync interval and
    # scaled to the heartbeat interval (heartbeats are spread evenly over it).
    window = None if n <= STEADY_FULL else fleet.config.sync_interval
    try:
        out = {"n": n, "formed_seconds": formed,
               "steady": {**scenarios.steady(fleet, window), "n": n},
               "one_change": scenarios.one_change(fleet),
               "partition": scenarios.partition(fleet), "loss": scenarios.loss(fleet),
               "config": fleet.config}
        out["wall_seconds"] = time.perf_counter() - t0
        out["cpu_seconds"] = time.process_time() - c0
        out["messages"] = sum(v for k, v in fleet.network.sent.items() if k != "bytes")
        return out
    finally:
        fleet.close()
        gc.unfreeze()


def lines(r: dict) -> list[str]:
    c, n = r["config"], r["n"]
    s = r["steady"]
    out = [f"N={n}: formed (seeded) in {r['formed_seconds']:.1f} s; simulated in "
           f"{r['wall_seconds']:.0f} s wall ({r['cpu_seconds']:.0f} s CPU), {r['messages']:,} messages "
           f"(heartbeat {c.heartbeat_interval} s, sync {c.sync_interval} s, tick "
           f"{c.tick_seconds} s)",
           f"  steady     : {s['messages_per_member']:8.1f} messages, "
           f"{s['bytes_per_member'] / 1024:9.1f} KiB per member per heartbeat interval "
           f"({_kinds(s['by_type'])}); level {_yes(s['level'])}"]
    for name in ("one_change", "partition", "loss"):
        x = r[name]
        took = (f"{x['seconds']:5.0f} s = {x['rounds']} sync interval(s)" if x["converged"]
                else "NOT converged")
        out.append(f"  {name:11}: {took}; sent {x['repair_bytes'] / 1024:9.1f} KiB for "
                   f"{x['differing_bytes'] / 1024:7.1f} KiB differing = "
                   f"{x['repair_bytes'] / max(1, x['differing_bytes']):6.1f}x "
                   f"({_kinds(x['by_type'])}); level {_yes(x['level'])}")
    return out


def _kinds(by_type: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(by_type.items()) if k != "bytes")


def _yes(flag: bool) -> str:
    return "yes" if flag else "NO"


def main(ns=(10, 100, 1000)) -> list[str]:
    """Prints (and returns) the figures for each N."""
    logs.configure(lambda message, level: None, level=logging.WARNING)
    out = []
    for n in ns:
        got = lines(run(n))
        print("\n".join(got), flush=True)
        out += got
    return out


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or (10, 100, 1000))
