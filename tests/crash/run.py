"""`make crash`: crash injection on the stand-in (tests/crash/harness.py); prints the
figures and the kill points hit; exit status 1 if anything was lost, left unfinished,
repeated or damaged, or an intent or a handshake could not be completed.

    python -m tests.crash.run [--intents 1000] [--handshakes 100] [--rate 0.0005]

The intents are spread over enough initiators that none nears the intake bound (one
member's peers accept at most 120 of its intents in two hours); every initiator crashes,
so the kill rate per point is a quarter of the one-victim runs' 0.002."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile

from tests.crash import harness
from tests.standin.backend import StandinFleet


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="crash injection on the stand-in")
    p.add_argument("--intents", type=int, default=1000)
    p.add_argument("--handshakes", type=int, default=100)
    p.add_argument("--rate", type=float, default=0.0005)
    a = p.parse_args(argv)
    fleet = StandinFleet(seed=18)
    with tempfile.TemporaryDirectory() as d:
        try:
            f = harness.run(fleet, a.intents, a.handshakes, a.rate, f"{d}/kills")
        finally:
            problems = fleet.teardown()
    out = sys.stdout.write
    out(f"crash injection: {f['intents']} intents by {f['initiators']} crashing initiators "
        f"({f['refused']} calls refused), {f['handshakes']} handshakes ({f['joined']} joined), "
        f"{f['kills']} SIGKILLs, {f['restarts']} restarts, {f['executions']} executions, "
        f"{f['seconds']:.0f} s\n")
    out(f"  kill points covered: {len(f['kill_points'])} of 5 "
        f"{json.dumps(f['kill_points'], sort_keys=True)}\n")
    out(f"  lost {len(f['lost'])}, unfinished {len(f['unfinished'])}, executed twice "
        f"{len(f['executed_twice'])}, illegal states {len(f['illegal'])}, integrity_check "
        f"{f['integrity']}, members missing {len(f['members_missing'])}, stand-in problems "
        f"{len(problems)}\n")
    for what in ("lost", "unfinished", "executed_twice", "illegal", "members_missing"):
        if f[what]:
            out(f"  {what}: {f[what][:5]}\n")
    for problem in problems[:5]:
        out(f"  {problem}\n")
    ok = not (f["lost"] or f["unfinished"] or f["executed_twice"] or f["illegal"]
              or f["members_missing"] or problems) and f["integrity"] == ["ok"] \
        and f["intents"] == a.intents and f["joined"] == a.handshakes
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
