"""A fleet of N members simulated in one process (tests/sim): the real handlers on real
SQLite, a manual clock, a simulated network (delay 50-150 ms, in order per link), every
member connected to every other (the protocol's topology: GOSSIP goes to the connected
members and is never relayed), signatures real secp256k1 as lightningd makes them. The
hive is formed by seeding (the admin's real signatures), not by N handshakes.

Scenarios and figures (tests/sim/scenarios.py): steady state over one heartbeat interval
(messages and bytes per member); one member's state changes; a third of the fleet cut off
for two sync intervals with changes on both sides, then healed; 5% message loss. For each:
seconds and sync intervals ("rounds") to converge, and the bytes sent meanwhile (all but
the periodic STATE_HASH) against the bytes of the states that differed. Goals: converged
within two sync intervals of healing; at most 2x the differing bytes; per-member traffic
no more than linear in N. Prints figures; asserts nothing.
Run: `python -m bench.fleet_sim [N ...]` (default 10 100; 1000 is estimated, see below).
"""
from __future__ import annotations

import logging
import sys
import time

from handlers.frame import logs
from tests.sim import scenarios
from tests.sim.fleet import SimFleet

FEASIBLE = 100       # above this, one process needs hours (estimated from the last run)


def run(n: int) -> dict:
    t0 = time.perf_counter()
    fleet = SimFleet(n)
    formed = time.perf_counter() - t0
    fleet.run(fleet.config.sync_interval)            # everyone's first sync
    try:
        out = {"n": n, "formed_seconds": formed, "steady": scenarios.steady(fleet),
               "one_change": scenarios.one_change(fleet),
               "partition": scenarios.partition(fleet), "loss": scenarios.loss(fleet),
               "config": fleet.config}
        out["wall_seconds"] = time.perf_counter() - t0
        out["messages"] = sum(v for k, v in fleet.network.sent.items() if k != "bytes")
        return out
    finally:
        fleet.close()


def lines(r: dict) -> list[str]:
    c, n = r["config"], r["n"]
    s = r["steady"]
    out = [f"N={n}: formed (seeded) in {r['formed_seconds']:.1f} s; simulated in "
           f"{r['wall_seconds']:.0f} s wall, {r['messages']:,} messages "
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


def per_message_seconds(r: dict) -> float:
    return r["wall_seconds"] / max(1, r["messages"])


def estimate(n: int, measured: dict) -> str:
    """Why N is not run: every member sends GOSSIP at each heartbeat and STATE_HASH at
    each sync interval to every other member, so the fleet handles N(N-1) messages per
    interval, each costing more as N grows."""
    c = measured["config"]
    per_heartbeat = n * (n - 1) * (1 + c.heartbeat_interval / c.sync_interval)
    hours = per_heartbeat * per_message_seconds(measured) * (n / measured["n"]) / 3600
    return (f"N={n}: not simulated: a full mesh handles {per_heartbeat:,.0f} messages per "
            f"heartbeat interval; at {per_message_seconds(measured) * 1e3:.2f} ms each "
            f"(measured at N={measured['n']}, growing with N) one steady interval alone "
            f"would take about {hours:.1f} h on this machine")


def _kinds(by_type: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(by_type.items()) if k != "bytes")


def _yes(flag: bool) -> str:
    return "yes" if flag else "NO"


def main(ns=(10, 100, 1000)) -> list[str]:
    """Prints (and returns) the figures for each N."""
    logs.configure(lambda message, level: None, level=logging.WARNING)
    out, last = [], None
    for n in ns:
        if n > FEASIBLE and last is not None:
            got = [estimate(n, last)]
        else:
            last = run(n)
            got = lines(last)
        print("\n".join(got), flush=True)
        out += got
    return out


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or (10, 100, 1000))
