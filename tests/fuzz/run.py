"""`make fuzz`: a million fuzzed messages at the handler level, and more through the real
plugin process on the stand-in; prints the count, the rate and what went wrong (zero
crashes, zero hook errors, zero unexpected state changes is a pass; exit status 1 if not).

    python -m tests.fuzz.run [--messages 1000000] [--process 20000] [--seed 0] [--workers N]
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from handlers.frame.clock import ManualClock
from tests.fuzz import mutate, process
from tests.fuzz.harness import Harness
from tests.standin.backend import StandinFleet


def _worker(job) -> dict:
    """One share of the handler-level messages, on its own nodes and seed."""
    index, messages, seed = job
    # In memory when the system has a tmpfs: the nodes' fsyncs are not what is judged here.
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as d:
        h = Harness(Path(d), ManualClock())
        src = mutate.RandomSource(random.Random(seed))
        started = time.monotonic()
        try:
            for i in range(messages):
                h.fuzz_one(src, src.choice(mutate.CATEGORIES), src.choice(h.seeds))
                if (i + 1) % 50_000 == 0:
                    t = h.tally
                    sys.stdout.write(
                        f"  ... worker {index}: {i + 1:,} messages, "
                        f"{(i + 1) / (time.monotonic() - started):,.0f}/s, crashes "
                        f"{len(t.crashes)}, error logs {len(t.errors)}, unexpected state "
                        f"changes {len(t.unexpected)}\n")
                    sys.stdout.flush()
        finally:
            h.close()
        t = h.tally
        return {"messages": t.messages, "crashes": t.crashes, "errors": t.errors,
                "unexpected": t.unexpected, "by": t.by, "seeds": len(h.seeds),
                "types": len({s.kind for s in h.seeds})}


def handler_level(messages: int, seed: int, out, workers: int = 1) -> bool:
    """`messages` fuzzed messages over `workers` processes (each its own nodes, its own
    seed): the judging is per node, so the shares are independent."""
    jobs = [(i, messages // workers + (i < messages % workers), seed + i)
            for i in range(workers)]
    started = time.monotonic()
    if workers == 1:
        results = [_worker(jobs[0])]
    else:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            results = pool.map(_worker, jobs)
    elapsed = time.monotonic() - started
    total = sum(r["messages"] for r in results)
    crashes = [x for r in results for x in r["crashes"]]
    errs = [x for r in results for x in r["errors"]]
    unexpected = [x for r in results for x in r["unexpected"]]
    pairs = set().union(*(r["by"] for r in results))
    out(f"handler level: {total:,} messages in {elapsed:,.1f} s "
        f"({total / elapsed:,.0f} messages/s, {workers} worker processes), "
        f"{results[0]['seeds']} seed messages of {results[0]['types']} types, "
        f"{len(pairs)} (type, category) pairs\n")
    out(f"  crashes {len(crashes)}, error logs {len(errs)}, "
        f"unexpected state changes {len(unexpected)}\n")
    for what in (crashes + errs + unexpected)[:10]:
        out(f"  {what}\n")
    return not (crashes or errs or unexpected)


def process_level(messages: int, seed: int, out) -> bool:
    fleet = StandinFleet(seed=seed)
    try:
        f = process.run(fleet, messages, seed)
    finally:
        problems = fleet.teardown()
    out(f"plugin process: {f['messages']:,} messages in {f['seconds']:,.1f} s "
        f"({f['rate']:,.0f} messages/s), {f['sent']:,} sent through sendcustommsg, "
        f"{f['undeliverable']:,} refused by it (over 65535 bytes, or not a message)\n")
    out(f"  crashes {0 if f['plugin_alive'] else 1}, hook errors {len(f['hook_errors'])}, "
        f"error logs {len(f['error_logs'])}, unexpected state changes "
        f"{0 if f['identity_unchanged'] else 1}, stand-in problems {len(problems)}\n")
    return f["plugin_alive"] and f["identity_unchanged"] and not (
        f["hook_errors"] or f["error_logs"] or problems)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=1_000_000)
    p.add_argument("--process", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="processes for the handler level (default: one per core)")
    a = p.parse_args(argv)
    out = sys.stdout.write
    ok = handler_level(a.messages, a.seed, out, max(1, a.workers))
    if a.process:
        ok = process_level(a.process, a.seed, out) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
