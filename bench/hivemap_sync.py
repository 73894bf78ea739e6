"""What anti-entropy costs: rounds, messages and bytes to bring a HiveMap of 100 members
(200 external peers each, the largest a state may be) to a member that holds none of it,
and then to bring back level a view where 10 members changed.

Prints figures; asserts nothing. Two nodes run the real handlers, rate limiters, SQLite and
secp256k1 signatures (the stand-in's key code); the other 98 members exist as keys only.
A round is one sync interval: both nodes tick (their periodic STATE_HASH), then messages
flow until none is left. The baseline, computed in the same process, is what a sync of the
whole map costs on the wire (every entry, in FULL_SYNC chunks). The ratio that matters is
bytes sent / bytes of the entries that differed.
Run: `make bench` (or `python -m bench.hivemap_sync`).
"""
from __future__ import annotations

import logging
import sys
import tempfile
from collections import Counter
from pathlib import Path

from handlers.frame import logs
from handlers.hivemap import gossip
from handlers.frame.clock import ManualClock
from handlers.hivemap.rules import chunk
from handlers.wire.framing import MsgType, decode, encode
from storage import hive as hive_store
from storage import hivemap
from tests.core.hive_sides import Side, form_hive, pump
from tests.core.hivemap_fleet import admit, entry_bytes, signed_state, store

MEMBERS, PEERS, CHANGED, MAX_ROUNDS = 100, 200, 10, 12


def _flow(sides, count: Counter) -> None:
    def observe(_x, _y, msg):
        msg_type, _ = decode(msg)
        count[msg_type.name] += 1
        count["bytes"] += len(msg) // 2
    pump(*sides, rounds=100, observe=observe)


def _level(a, e) -> bool:
    return hivemap.all_entries(a.db.conn()) == hivemap.all_entries(e.db.conn())


def _reconverge(clock, a, e) -> tuple[int | None, Counter]:
    count: Counter = Counter()
    for rounds in range(1, MAX_ROUNDS + 1):
        clock.advance(a.config.sync_interval)
        for s in (a, e):
            gossip.on_tick(s.ctx)
        _flow((a, e), count)
        if _level(a, e):
            return rounds, count
    return None, count


def _differing_bytes(a, e) -> int:
    theirs = {x["state"]["peer_id"]: x for x in hivemap.all_entries(e.db.conn())}
    return sum(entry_bytes(x) for x in hivemap.all_entries(a.db.conn())
               if theirs.get(x["state"]["peer_id"]) != x)


def _report(out, title, rounds, count, differing, baseline) -> None:
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(count.items()) if k != "bytes")
    done = f"{rounds} rounds" if rounds else f"NOT level after {MAX_ROUNDS} rounds"
    out(f"{title}:\n")
    out(f"  {done}; {sum(v for k, v in count.items() if k != 'bytes')} messages ({kinds})\n")
    out(f"  bytes sent {count['bytes'] / 1024:9.1f} KiB; entries that differed "
        f"{differing / 1024:9.1f} KiB; ratio sent/differing {count['bytes'] / differing:5.2f}; "
        f"sent / one whole-map sync {count['bytes'] / baseline:5.2f}\n")


def measure() -> dict:
    """From empty, then after CHANGED members changed: rounds, messages, bytes sent, bytes
    that differed, and the whole-map baseline."""
    logs.configure(lambda message, level: None, level=logging.WARNING)
    with tempfile.TemporaryDirectory() as d:
        clock = ManualClock()
        a, e = Side("a", Path(d), clock), Side("e", Path(d), clock)
        form_hive(a, e)
        hive_id = hive_store.get_meta(a.db.conn())["hive_id"]
        keys = admit(a, (a, e), MEMBERS - 2)
        store(a, [signed_state(k, hive_id, version=1, timestamp=int(clock.now()), peers=PEERS)
                  for k in keys])
        gossip.on_tick(a.ctx)                       # a's own state; e's comes at its tick
        held = hivemap.all_entries(a.db.conn())
        whole = chunk(held, lambda g, i, n: encode(
            MsgType.FULL_SYNC, {"entries": g, "chunk": i, "chunks": n}))
        baseline = sum(len(m) // 2 for m in whole)
        out = {"chunks": len(whole), "baseline": baseline, "sync": a.config.sync_interval}
        differing = _differing_bytes(a, e)
        rounds, count = _reconverge(clock, a, e)
        out["from_empty"] = (rounds, count, differing)
        if rounds is None:                          # level them by hand, to go on
            store(e, hivemap.all_entries(a.db.conn()))
            store(a, hivemap.all_entries(e.db.conn()))
        store(a, [signed_state(k, hive_id, version=2, timestamp=int(clock.now()),
                               peers=PEERS, salt=1) for k in keys[:CHANGED]])
        differing = _differing_bytes(a, e)
        rounds, count = _reconverge(clock, a, e)
        out["changed"] = (rounds, count, differing)
        a.close()
        e.close()
    return out


def main() -> None:
    out = sys.stdout.write
    r = measure()
    out(f"cl-hive anti-entropy benchmark: {MEMBERS} members x {PEERS} external peers, "
        f"sync interval {r['sync']} s\n")
    out(f"  baseline: one whole-map sync = {r['chunks']} FULL_SYNC chunks, "
        f"{r['baseline'] / 1024:.1f} KiB\n\n")
    _report(out, f"from empty ({MEMBERS - 1} states to send)", *r["from_empty"], r["baseline"])
    _report(out, f"after {CHANGED} members changed", *r["changed"], r["baseline"])


if __name__ == "__main__":
    main()
