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


def base_n(steady: dict) -> int:
    return steady["n"]


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
          f"{r['bare_rate']:,.0f}/s, best of {message_path.ROUNDS} rounds each (per round: "
          f"median {r['round_median']:.2f}x, lowest {r['round_lowest']:.2f}x; stand-in; "
          "higher is better)")

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

    base = None
    for n in (10, 100, 1000):
        f = fleet_sim.run(n)
        part, s, one, lost = f["partition"], f["steady"], f["one_change"], f["loss"]
        base = base or s
        sync = f["config"].sync_interval
        _line(f"fleet N={n}: partition heal", f"{part['repair_bytes'] / max(1, part['differing_bytes']):6.2f}x  "
              f"{part['repair_bytes'] / 1024:,.0f} KiB sent for {part['differing_bytes'] / 1024:,.0f} "
              f"KiB that differed (goal <= 2); healed in {_took(part)} (goal <= {2 * sync} s)")
        _line(f"fleet N={n}: steady traffic", f"{s['bytes_per_member'] / (base['bytes_per_member'] * n / base_n(base)):6.2f}x  "
              f"{s['bytes_per_member'] / 1024:,.0f} KiB, {s['messages_per_member']:,.0f} messages per "
              f"member per heartbeat vs N={base_n(base)} scaled linearly (goal <= 1)"
              + (f"; measured over {s['window']:.0f} s" if s["window"] < f["config"].heartbeat_interval else ""))
        _line(f"fleet N={n}: one change, 5% loss", f"{one['repair_bytes'] / max(1, one['differing_bytes']):6.2f}x  "
              f"sent/differing for one change (in {_took(one)}); {lost['repair_bytes'] / max(1, lost['differing_bytes']):.2f}x "
              f"under 5% loss (in {_took(lost)}); {f['wall_seconds']:.0f} s wall, {f['cpu_seconds']:.0f} s CPU")
    print(f"\n{time.perf_counter() - started:.0f} s in all", flush=True)


if __name__ == "__main__":
    main()
