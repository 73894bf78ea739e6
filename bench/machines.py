"""How many live machine instances the design holds, and what one costs.

Prints figures; asserts nothing. The baseline, run in the same process, is the naive
design: one `transitions.Machine` per object. Ours is one shared Machine per kind with
instances that live in SQLite rows and exist as objects only while a trigger runs.
Run: `make bench` (or `python -m bench.machines [N]`).
"""
from __future__ import annotations

import gc
import logging
import os
import sys
import tempfile
import time
import tracemalloc

from transitions import Machine

from handlers.frame import config as cfg
from handlers.frame import logs
from handlers.frame.clock import ManualClock
from handlers.frame.dispatch import Dispatcher
from machines import SPECS
from machines.guards import GUARDS
from machines.runtime import Instance, runtime_for
from storage.db import Database

SPEC = SPECS["intent_lock"]
LOCK_END = 2**40          # an intent lock window that has not passed: the commit path


def _definition():
    return dict(states=list(SPEC.states), initial=SPEC.initial, auto_transitions=False,
                send_event=True,
                transitions=[{"trigger": r.trigger, "source": list(r.sources), "dest": r.dest,
                              "conditions": [GUARDS[g] for g in r.guards]} for r in SPEC.rules])


class Obj:
    def __init__(self):
        self.deadline = 0.0
        self.data = {"role": "local", "expires_at": LOCK_END}


def measure_memory(build, n):
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    kept = build(n)
    elapsed = time.perf_counter() - t0
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return kept, (after - before) / n, elapsed / n


def baseline_build(n):
    objs = []
    for _ in range(n):
        o = Obj()
        Machine(model=o, **_definition())
        objs.append(o)
    return objs


def ours_build(n):
    rt = runtime_for("intent_lock")
    return [Instance("intent_lock", str(i), "pending",
                     data={"role": "local", "expires_at": LOCK_END}, deadline=0.0)
            for i in range(n)] if rt else []


def time_triggers(fire, objs):
    t0 = time.perf_counter()
    for o in objs:
        fire(o)
    return (time.perf_counter() - t0) / len(objs)


def main(n: int = 10_000) -> None:
    out = sys.stdout.write
    # Log as the plugin does (JSON lines to a sink), so the cost of logging is counted.
    sunk = []
    logs.configure(lambda message, level: sunk.append(len(message)), level=logging.INFO)
    out(f"cl-hive machine benchmark, n={n} intent locks (python {sys.version.split()[0]})\n\n")
    base_objs, base_mem, base_build = measure_memory(baseline_build, n)
    ours_objs, ours_mem, ours_build_t = measure_memory(ours_build, n)
    base_fire = time_triggers(lambda o: o.trigger("hold_elapsed", now=1.0), base_objs)
    rt = runtime_for("intent_lock")

    class C:
        intent_hold_seconds, intent_expire_seconds = 60, 600
    ours_fire = time_triggers(lambda o: rt.fire(o, "hold_elapsed", 1.0, C()), ours_objs)
    del base_objs, ours_objs
    gc.collect()

    out("in memory (no persistence):\n")
    out(f"  baseline  Machine per object : {base_mem / 1024:7.1f} KiB/instance, "
        f"build {base_build * 1e6:7.1f} us, trigger {base_fire * 1e6:6.1f} us\n")
    out(f"  ours      shared Machine     : {ours_mem / 1024:7.1f} KiB/instance, "
        f"build {ours_build_t * 1e6:7.1f} us, trigger {ours_fire * 1e6:6.1f} us\n")
    out(f"  ratio ours/baseline          : memory {ours_mem / base_mem:5.3f}, "
        f"trigger {ours_fire / base_fire:5.2f}\n\n")

    p = persisted(n)
    create_t, persist_fire, tick_t, fired, size = (p[k] for k in (
        "create", "trigger", "tick", "fired", "size"))
    out("persisted (SQLite, WAL, one transaction per trigger incl. the transition log):\n")
    out(f"  create                       : {create_t * 1e6:7.1f} us/instance\n")
    out(f"  trigger (load+fire+save+log) : {persist_fire * 1e6:7.1f} us "
        f"({persist_fire / base_fire:5.1f}x the in-memory baseline trigger)\n")
    out(f"  tick over {n} live, {fired} due : {tick_t * 1e3:7.1f} ms\n")
    out(f"  log lines emitted            : {len(sunk)} ({sum(sunk) / len(sunk):.0f} bytes avg)\n")
    out(f"  database file                : {size / n:7.1f} bytes/instance "
        f"(rows, indexes and their log records)\n")
    out(f"  memory held between events   : 0 per instance (rows only; "
        f"baseline holds {base_mem / 1024:.1f} KiB each)\n")
    out(f"  restore after a restart      : {p['restore'] * 1e3:7.1f} ms to the first tick done "
        f"(baseline: {p['restore_baseline'] * 1e3:7.1f} ms rebuilding a Machine per row, "
        f"ratio {p['restore'] / p['restore_baseline']:5.2f})\n")


def _populate(disp, clock, config, n) -> None:
    for i in range(n):
        if i == n // 10:
            clock.advance(config.intent_hold_seconds // 2)
        disp.create("intent_lock", f"me:i{i}", data={"role": "local", "expires_at": LOCK_END},
                    domain={"intent_type": "rebalance", "target": f"t{i}",
                            "initiator": "me", "intent_id": f"i{i}",
                            "announced_at": clock.now(), "expires_at": LOCK_END})


def _restore_baseline(db_path, now) -> float:
    """The naive design after a restart: every row read back into a Machine per object,
    then the due ones fired in memory."""
    import json
    db = Database(db_path)
    t0 = time.perf_counter()
    objs = []
    for row in db.conn().execute("SELECT state, deadline, data FROM intent_locks"):
        o = Obj()
        o.deadline, o.data = row["deadline"], json.loads(row["data"])
        Machine(model=o, initial=row["state"], **{k: v for k, v in _definition().items()
                                                  if k != "initial"})
        objs.append(o)
    for o in objs:
        if o.deadline is not None and o.deadline <= now and o.state == "pending":
            o.trigger("hold_elapsed", now=now)
    took = time.perf_counter() - t0
    db.close()
    return took


def persisted(n: int) -> dict:
    """n intent locks in SQLite: create, trigger, the tick, file size, and a restart (the
    database opened again and its first tick) against the naive restart."""
    with tempfile.TemporaryDirectory() as d:
        config = cfg.from_init({}, d)
        db = Database(config.db_path)
        db.migrate()
        clock = ManualClock()
        disp = Dispatcher(db, clock, lambda: config)
        t0 = time.perf_counter()
        _populate(disp, clock, config, n)
        create_t = (time.perf_counter() - t0) / n
        # The first tenth were announced earlier: only their hold has ended at this tick.
        clock.advance(config.intent_hold_seconds // 2)
        db.close()
        restore_baseline = _restore_baseline(config.db_path, clock.now())
        t0 = time.perf_counter()              # a restart: open, then the first tick
        db = Database(config.db_path)
        disp = Dispatcher(db, clock, lambda: config)
        t1 = time.perf_counter()
        fired = len(disp.fire_due())
        tick_t = time.perf_counter() - t1
        restore = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(n // 10):
            disp.fire("intent_lock", f"me:i{i}", "start_execution")
        persist_fire = (time.perf_counter() - t0) / (n // 10)
        db.checkpoint()
        size = os.path.getsize(config.db_path)
        db.close()
    return {"create": create_t, "trigger": persist_fire, "tick": tick_t, "fired": fired,
            "size": size, "restore": restore, "restore_baseline": restore_baseline}


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
