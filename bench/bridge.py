"""The bridge under companion faults, on the stand-in fleet (real plugin processes).

1. The custommsg hook's answer latency (p50, p99) while cl-revenue-ops hangs on every
   call cl-hive makes (its breaker held closed, so calls keep hanging), against the same
   node with cl-revenue-ops idle, printed as a ratio (same process, same fleet code).
2. The failure matrix: for each companion and fault (hang, die mid-call, slow, garbage),
   the wall-clock time from the fault to its breaker being open, and from the operator's
   recovery to the breaker being closed, with the short intervals of
   tests/standin/bridge_faults.FAST (tick 1 s, check 2 s, timeout 2 s, threshold 2,
   reset 3 s).

Prints figures; asserts nothing. Run: `python -m bench.bridge [hook_samples]`.
"""
from __future__ import annotations

import statistics
import sys
import time

from handlers.wire.framing import MsgType, encode
from tests.standin.backend import StandinFleet
from tests.standin.bridge_faults import FAST, FAULTS, NAME, companion, open_and_close

STRANGER = "02" + "42" * 32


def _percentiles(samples: list[float]) -> tuple[float, float]:
    qs = statistics.quantiles(samples, n=100)
    return qs[49], qs[98]


def _hook_samples(samples: int):
    fleet = StandinFleet()
    try:
        # A threshold the hangs never reach: calls keep going out and keep hanging.
        opts = {**FAST, "hive-breaker-failure-threshold": 100}
        node, = fleet.nodes(1, options=opts, companions=["revenue_ops", "clboss"])
        fleet.wait_for(lambda: companion(node, "revenue_ops")["detected"], timeout=15)
        payload = encode(MsgType.STATE_HASH, {"fleet_hash": "00" * 32, "members": 1, "ts": 0})

        def measure() -> list[float]:
            out = []
            for _ in range(samples):
                t = time.perf_counter()
                node.standin.receive_custommsg(STRANGER, payload)
                out.append(time.perf_counter() - t)
                time.sleep(0.002)       # about the rate a busy peer would send
            return out

        idle = measure()
        node.rpc.call("revenue-standin-mode", {"mode": "hang"})
        fleet.wait_for(lambda: companion(node, "revenue_ops")["calls_unanswered"] >= 2, timeout=20,
                       what="two calls hung in cl-revenue-ops")
        hung = measure()
        still = companion(node, "revenue_ops")
        node.rpc.call("revenue-standin-mode", {"mode": "ok"})
        return idle, hung, still
    finally:
        fleet.teardown()


def measure_hook(samples: int) -> dict:
    """p50 and p99 of the hook's answer in seconds, idle and with cl-revenue-ops hanging."""
    idle, hung, still = _hook_samples(samples)
    i50, i99 = _percentiles(idle)
    h50, h99 = _percentiles(hung)
    return {"idle_p50": i50, "idle_p99": i99, "hung_p50": h50, "hung_p99": h99,
            "hung_calls": still["calls_unanswered"], "breaker": still["breaker"]["state"]}


def hook_latency(samples: int) -> None:
    r = measure_hook(samples)
    print(f"custommsg hook answer latency, {samples} messages each")
    print(f"  idle companion        p50 {r['idle_p50'] * 1e3:7.3f} ms   "
          f"p99 {r['idle_p99'] * 1e3:7.3f} ms")
    print(f"  hanging companion     p50 {r['hung_p50'] * 1e3:7.3f} ms   "
          f"p99 {r['hung_p99'] * 1e3:7.3f} ms   ({r['hung_calls']} calls hung, "
          f"breaker {r['breaker']})")
    print(f"  ratio hanging/idle    p50 {r['hung_p50'] / r['idle_p50']:7.2f}      "
          f"p99 {r['hung_p99'] / r['idle_p99']:7.2f}")


def failure_matrix() -> None:
    print("\nbreaker open/close times (wall clock, stand-in fleet, FAST options)")
    print(f"  {'companion':16} {'fault':8} {'to open':>9} {'to close':>9}")
    for which in ("revenue_ops", "clboss"):
        for fault in FAULTS:
            fleet = StandinFleet()
            try:
                node, = fleet.nodes(1, options=FAST, companions=["revenue_ops", "clboss"])
                opened, closed = open_and_close(fleet, node, which, fault)
                print(f"  {NAME[which]:16} {fault:8} {opened:8.2f}s {closed:8.2f}s")
            finally:
                fleet.teardown()


def main() -> None:
    samples = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    hook_latency(samples)
    failure_matrix()


if __name__ == "__main__":
    main()
