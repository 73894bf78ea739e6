"""`make fuzz`: a million fuzzed messages at the handler level, and more through the real
plugin process on the stand-in; prints the count, the rate and what went wrong (zero
crashes, zero hook errors, zero unexpected state changes is a pass; exit status 1 if not).

    python -m tests.fuzz.run [--messages 1000000] [--process 20000] [--seed 0]
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from handlers.frame.clock import ManualClock
from tests.fuzz import mutate, process
from tests.fuzz.harness import Harness
from tests.standin.backend import StandinFleet


def handler_level(messages: int, seed: int, out) -> bool:
    with tempfile.TemporaryDirectory() as d:
        h = Harness(Path(d), ManualClock())
        src = mutate.RandomSource(random.Random(seed))
        started = time.monotonic()
        try:
            for i in range(messages):
                h.fuzz_one(src, src.choice(mutate.CATEGORIES), src.choice(h.seeds))
                if (i + 1) % 50_000 == 0:
                    t = h.tally
                    out(f"  ... {i + 1:,} messages, "
                        f"{(i + 1) / (time.monotonic() - started):,.0f}/s, crashes "
                        f"{len(t.crashes)}, error logs {len(t.errors)}, unexpected state "
                        f"changes {len(t.unexpected)}\n")
                    sys.stdout.flush()
        finally:
            h.close()
        elapsed = time.monotonic() - started
        t = h.tally
        out(f"handler level: {t.messages:,} messages in {elapsed:,.1f} s "
            f"({t.messages / elapsed:,.0f} messages/s), {len(h.seeds)} seed messages of "
            f"{len({s.kind for s in h.seeds})} types, {len(t.by)} (type, category) pairs\n")
        out(f"  crashes {len(t.crashes)}, error logs {len(t.errors)}, "
            f"unexpected state changes {len(t.unexpected)}\n")
        for what in (t.crashes + t.errors + t.unexpected)[:10]:
            out(f"  {what}\n")
        return t.clean


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
    a = p.parse_args(argv)
    out = sys.stdout.write
    ok = handler_level(a.messages, a.seed, out)
    if a.process:
        ok = process_level(a.process, a.seed, out) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
