"""`make bench`: every benchmark in one run, one line each, as a ratio against a baseline
measured in the same run (same process, same machine load). Each module also runs alone
with its full figures (`python -m bench.<name>`). Timings on a shared machine are noisy;
the ratios are what compares.
"""
from __future__ import annotations

import logging
import sys
import time

from bench import (bridge, contribution, fleet_sim, hivemap_sync, machines, manifest,
                   message_path, planner)
from handlers.frame import logs

MACHINES, MESSAGES, HOOK_SAMPLES = 10_000, 1000, 400


def _line(name: str, text: str) -> None:
    print(f"{name:34} {text}", flush=True)


def _took(result: dict) -> str:
    return f"{result['seconds']:.0f} s" if result["converged"] else "NOT converged"


def main() -> None:
    logs.configure(lambda message, level: None, level=logging.WARNING)
    started = time.perf_counter()
    print(f"cl-hive benchmarks (python {sys.version.split()[0]}); ratio = ours / baseline "
          "of the same run\n", flush=True)

    r = message_path.measure(MESSAGES)
    _line("message path", f"{r['ours_rate'] / r['bare_rate']:6.2f}x  signed GOSSIP fully "
          f"applied {r['ours_rate']:,.0f}/s vs a bare plugin that only calls checkmessage "
          f"{r['bare_rate']:,.0f}/s (stand-in; higher is better)")

    p = machines.persisted(MACHINES)
    _line(f"machine restore ({MACHINES:,})", f"{p['restore'] / p['restore_baseline']:6.2f}x  "
          f"reopen + first tick ({p['fired']} due) {p['restore'] * 1e3:,.0f} ms vs rebuilding "
          f"a transitions.Machine per row {p['restore_baseline'] * 1e3:,.0f} ms "
          "(lower is better)")

    m = manifest.measure()
    _line("getmanifest latency", f"{m['ours'] / m['bare']:6.2f}x  process start to answer "
          f"{m['ours'] * 1e3:.0f} ms vs a bare pyln plugin {m['bare'] * 1e3:.0f} ms "
          "(lower is better)")

    c = contribution.measure()
    _line("forward-event absorption", f"{c['total'] / c['per_commit']:6.1f}x  "
          f"{c['total']:,.0f} events/s end to end vs an INSERT+commit per settled event "
          f"{c['per_commit']:,.0f}/s (higher is better)")

    h = bridge.measure_hook(HOOK_SAMPLES)
    _line("hook latency, companion hanging", f"{h['hung_p50'] / h['idle_p50']:6.2f}x  "
          f"p50 {h['hung_p50'] * 1e3:.2f} ms with {h['hung_calls']} calls hung vs "
          f"{h['idle_p50'] * 1e3:.2f} ms idle (p99 ratio {h['hung_p99'] / h['idle_p99']:.2f}; "
          "1.0 is the goal)")

    a = hivemap_sync.measure()
    rounds, count, differing = a["changed"]
    _line("anti-entropy, 10 of 100 changed", f"{count['bytes'] / differing:6.2f}x  "
          f"{count['bytes'] / 1024:.0f} KiB sent for {differing / 1024:.0f} KiB differing, "
          f"{rounds} round(s) (lower is better, 1.0 the floor)")

    _line("planner cycle vs full listchannels", planner.line(planner.measure()))

    last = None
    for n in (10, 100, 1000):
        if n > fleet_sim.FEASIBLE:
            _line(f"fleet simulation N={n}", "  n/a   " + fleet_sim.estimate(n, last))
            continue
        last = f = fleet_sim.run(n)
        part, s = f["partition"], f["steady"]
        healed = _took(part)
        _line(f"fleet simulation N={n}",
              f"{part['repair_bytes'] / max(1, part['differing_bytes']):6.1f}x  partition "
              f"healed in {healed} (goal: 2 sync intervals = {2 * f['config'].sync_interval} "
              f"s), sent/differing (goal <= 2); steady {s['bytes_per_member'] / 1024:.0f} KiB "
              f"and {s['messages_per_member']:.0f} messages per member per heartbeat; one "
              f"change {_took(f['one_change'])}; 5% loss {_took(f['loss'])}; "
              f"{f['wall_seconds']:.0f} s wall")
    print(f"\n{time.perf_counter() - started:.0f} s in all", flush=True)


if __name__ == "__main__":
    main()
