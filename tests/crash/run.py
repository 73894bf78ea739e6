"""`make crash`: crash injection on the stand-in (tests/crash/harness.py); prints the
figures and the kill points hit; exit status 1 if anything was lost, repeated or damaged.

    python -m tests.crash.run [--intents 100] [--handshakes 20] [--rate 0.002]

One member announces at most 120 intents in two hours (peers refuse more: the intake
bound), so one run's intents stay under that."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile

from tests.crash import harness
from tests.standin.backend import StandinFleet


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="crash injection on the stand-in")
    p.add_argument("--intents", type=int, default=100)
    p.add_argument("--handshakes", type=int, default=20)
    p.add_argument("--rate", type=float, default=0.002)
    a = p.parse_args(argv)
    fleet = StandinFleet(seed=18)
    with tempfile.TemporaryDirectory() as d:
        try:
            f = harness.run(fleet, a.intents, a.handshakes, a.rate, f"{d}/kills")
        finally:
            problems = fleet.teardown()
    out = sys.stdout.write
    out(f"crash injection: {f['intents']} intents, {f['handshakes']} handshakes "
        f"({f['joined'] - 1} joined), {f['kills']} SIGKILLs, {f['restarts']} restarts, "
        f"{f['executions']} executions, {f['seconds']:.0f} s\n")
    out(f"  kill points covered: {len(f['kill_points'])} of 5 "
        f"{json.dumps(f['kill_points'], sort_keys=True)}\n")
    out(f"  lost {len(f['lost'])}, executed twice {len(f['executed_twice'])}, illegal states "
        f"{len(f['illegal'])}, integrity_check {f['integrity']}, members missing "
        f"{len(f['members_missing'])}, stand-in problems {len(problems)}\n")
    ok = not (f["lost"] or f["executed_twice"] or f["illegal"] or f["members_missing"]
              or problems) and f["integrity"] == ["ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
