"""What the contribution ledger's intake absorbs: forward events per second through the
real notification path (`Ledger.offer`, on the caller's thread) plus the tick's flush
(channel map, members, one transaction per tick, throttle evaluation), against a plain
SQLite insert loop in the same process writing each settled event as it comes (the naive
handler: one INSERT and commit per event; and, kinder to it, one transaction for all).

Prints figures; asserts nothing. The node forwards among 50 channels (2 to members, 48 to
outsiders); every forward is two events (offered, then settled), as lightningd emits them;
a tick flushes every TICK_EVENTS events (about 5 s of a node forwarding 200 a second).
Both sides use the plugin's database settings (WAL, the same synchronous level).
Run: `make bench` (or `python -m bench.contribution`).
"""
from __future__ import annotations

import logging
import random
import sys
import tempfile
import time
from pathlib import Path

from handlers.contribution import flow
from handlers.contribution.ledger import Ledger
from handlers.frame import logs
from handlers.frame.clock import ManualClock
from storage.db import Database
from tests.core.hive_sides import Side, form_hive

FORWARDS, TICK_EVENTS, CHANNELS = 20_000, 2_000, 50


def _events(scids, n):
    rng = random.Random(7)
    out = []
    for i in range(n):
        i_ch, o_ch = rng.sample(scids, 2)
        amount = rng.randrange(1_000, 50_000_000)
        base = {"payment_hash": f"{i:064x}", "in_channel": i_ch, "out_channel": o_ch,
                "in_msat": amount + 100, "out_msat": amount, "fee_msat": 100,
                "received_time": 1.0}
        out += [{**base, "status": "offered"}, {**base, "status": "settled", "resolved_time": 2.0}]
    return out


def ours(tmp: Path, clock) -> tuple[float, float, int]:
    a, b, c = (Side(n, tmp, clock, **{"hive-contribution-min-sat": 1}) for n in "abc")
    form_hive(a, b, c)
    scids = []
    for i in range(CHANNELS):
        peer = (b.node_id, c.node_id)[i] if i < 2 else "02" + f"{i:064x}"
        scid = f"{700_000 + i}x{i}x0"
        a.lightning.channels.append({"peer_id": peer, "short_channel_id": scid, "state": "CHANNELD_NORMAL"})
        scids.append(scid)
    events = _events(scids, FORWARDS)
    ledger = Ledger(clock)
    offer_s = 0.0
    t0 = time.perf_counter()
    for start in range(0, len(events), TICK_EVENTS):
        t1 = time.perf_counter()
        for e in events[start:start + TICK_EVENTS]:
            ledger.offer(e)
        offer_s += time.perf_counter() - t1
        flow.on_tick(a.ctx, ledger)
        clock.advance(5)
    total_s = time.perf_counter() - t0
    rows = a.db.conn().execute("SELECT count(*) FROM contribution_days").fetchone()[0]
    for s in (a, b, c):
        s.close()
    return len(events) / offer_s, len(events) / total_s, rows


def baseline(tmp: Path, one_transaction: bool) -> float:
    # Not the plugin's SQL: the naive design the ledger is measured against.
    db = Database(str(tmp / f"baseline-{one_transaction}.db"))
    conn = db.conn()
    conn.execute("CREATE TABLE forwards (in_channel TEXT, out_channel TEXT, out_msat INTEGER, at REAL)")
    events = _events([f"{i}x{i}x0" for i in range(CHANNELS)], FORWARDS)
    t0 = time.perf_counter()
    if one_transaction:
        conn.execute("BEGIN")
    for e in events:
        if e["status"] == "settled":
            conn.execute("INSERT INTO forwards VALUES (?, ?, ?, ?)",
                         (e["in_channel"], e["out_channel"], e["out_msat"], time.time()))
    if one_transaction:
        conn.execute("COMMIT")
    took = time.perf_counter() - t0
    db.close()
    return len(events) / took


def measure() -> dict:
    """Events a second: ours (offer only, end to end) and the two baselines."""
    logs.configure(lambda message, level: None, level=logging.INFO)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        offer_rate, total_rate, rows = ours(tmp, ManualClock())
        per_commit = baseline(tmp, one_transaction=False)
        one_tx = baseline(tmp, one_transaction=True)
    return {"offer": offer_rate, "total": total_rate, "rows": rows,
            "per_commit": per_commit, "one_tx": one_tx}


def main() -> None:
    out = sys.stdout.write
    r = measure()
    offer_rate, total_rate, rows, per_commit, one_tx = (r[k] for k in (
        "offer", "total", "rows", "per_commit", "one_tx"))
    out(f"cl-hive contribution ledger benchmark: {FORWARDS} forwards = {2 * FORWARDS} events "
        f"over {CHANNELS} channels, a flush every {TICK_EVENTS} events\n\n")
    out(f"  ledger: offer only (the notification handler) : {offer_rate:12,.0f} events/s\n")
    out(f"  ledger: offer + flush per tick (end to end)    : {total_rate:12,.0f} events/s "
        f"({rows} day-bucket rows written)\n")
    out(f"  baseline: INSERT + commit per settled event    : {per_commit:12,.0f} events/s\n")
    out(f"  baseline: INSERT loop in one transaction       : {one_tx:12,.0f} events/s\n\n")
    out(f"  ratio end to end / INSERT + commit per event   : {total_rate / per_commit:8.1f}x\n")
    out(f"  ratio end to end / INSERT loop, one transaction: {total_rate / one_tx:8.1f}x\n")
    out(f"  ratio offer only / INSERT + commit per event   : {offer_rate / per_commit:8.1f}x\n")


if __name__ == "__main__":
    main()
