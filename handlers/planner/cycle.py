"""The planner's cycle: every `hive-planner-interval` seconds (the stored plan's time is the
timer, so a restart neither skips nor repeats a cycle) the tick gathers the HiveMap, reads
the graph off the worker (`reader`), computes the plan (`rules`), stores it, and acts on
it: saturation verdicts are stored and each member's own CLBoss is told (`apply`), and the
assignee of a planned open, and only it, proposes it as a pending action (governance
decides; the intent lock and the executor's checks follow).

`hive-plan dry_run=true` runs the same read and computation and acts on nothing."""
from __future__ import annotations

from concurrent.futures import Future

import structlog

from handlers.bridge.pool import CallOutcome
from handlers.frame import errors
from handlers.hivemap.rules import fleet_hash
from handlers.membership import members as ms
from handlers.planner import apply, reader, rules
from storage import hive as hive_store
from storage import hivemap
from storage import planner as store

log = structlog.get_logger("hive.planner")

GRAPH_LANE = "lightningd-graph"
FAILED_WINDOW = 7 * 86400        # a target whose planned open failed is left this long
FIRST = "the first cycle runs one hive-planner-interval after the hive first started"


def _reading(ctx) -> bool:
    return bool(ctx.timers.get("planner_reading"))


def on_tick(ctx) -> None:
    conn = ctx.db.conn()
    if hive_store.get_meta(conn) is None or ctx.node_id not in ms.active_ids(conn):
        return
    now = ctx.clock.now()
    last = store.last_plan(conn)
    if last is None:
        # Persisted: the timer survives a restart (no cycle at every start). The hash
        # lets the first cycle act if the HiveMap stays as it is until then.
        entries = [e["state"] for e in hivemap.all_entries(conn)]
        with ctx.db.transaction() as c:
            store.store_plan(c, now, {"computed_at": now, "skipped": FIRST,
                                      "fleet_hash": fleet_hash(entries)})
        return
    if now - last[0] < ctx.config().planner_interval or _reading(ctx):
        return
    run(ctx, dry_run=False)


def run(ctx, dry_run: bool) -> Future:
    """On the worker: start a cycle; the future is answered with the plan once the graph
    read ended (on the worker too)."""
    answer: Future = Future()
    conn = ctx.db.conn()
    members = ms.active_ids(conn)
    entries = [e["state"] for e in hivemap.all_entries(conn)]
    inputs = {
        "members": members, "states": entries, "fleet_hash": fleet_hash(entries),
        "previously": store.saturated(conn),
        "excluded": hive_store.banned_ids(conn) | {
            a["target"] for a in store.planner_opens(
                conn, ("failed", "rejected", "expired"), ctx.clock.now() - FAILED_WINDOW)},
    }
    targets = sorted(rules.fleet_capacity(entries, members))

    def finished(graph: dict) -> None:
        if not dry_run:
            ctx.timers.pop("planner_reading", None)
        try:
            answer.set_result(_conclude(ctx, inputs, graph, dry_run))
        except Exception as e:      # a fault: answered, and raised where it is logged
            answer.set_exception(e)
            raise

    if not dry_run:
        ctx.timers["planner_reading"] = True
    now = ctx.clock.now()
    if ctx.bridge is None:          # handler tests without a pool: read on this thread
        finished(reader.read_graph(ctx.lightning.call, targets, members, now))
        return answer
    lightning = ctx.bridge.pool.lightning

    def done(outcome: CallOutcome) -> None:
        if outcome.ok and isinstance(outcome.result, dict):
            return finished(outcome.result)
        finished({"error": f"{outcome.status}: {outcome.error}", "read_at": int(now)})

    # Longer than one call's timeout: a read is one call per target and candidate.
    deadline = now + 4 * ctx.config().bridge_timeout_seconds
    ctx.bridge.pool.start(GRAPH_LANE, "planner-graph-read", {}, deadline, done,
                          run=lambda: reader.read_graph(lightning.call, targets, members, now))
    return answer


def _conclude(ctx, inputs, graph, dry_run) -> dict:
    now = ctx.clock.now()
    last = store.last_plan(ctx.db.conn())
    stable = last is not None and last[1].get("fleet_hash") == inputs["fleet_hash"]
    plan = rules.compute(members=inputs["members"], states=inputs["states"], graph=graph,
                         previously=inputs["previously"], excluded=inputs["excluded"],
                         now=now, settings=rules.Settings.of(ctx.config()), stable=stable)
    plan.update({"computed_at": now, "fleet_hash": inputs["fleet_hash"], "dry_run": dry_run,
                 "graph_reads": graph.get("reads")})
    mine = [p for p in plan["proposals"] if p["assignee"] == ctx.node_id]
    for p in plan["proposals"]:
        p["ours"] = p["assignee"] == ctx.node_id
    if dry_run:
        return plan
    apply.saturation(ctx, plan, inputs["previously"])
    for p in mine:
        apply.propose(ctx, p)
    with ctx.db.transaction() as conn:
        store.store_plan(conn, now, plan)
    log.info("planner.cycle", fleet_hash=plan["fleet_hash"], skipped=plan["skipped"],
             saturated=len(plan["saturated"]), proposals=len(plan["proposals"]),
             ours=[p.get("action_id") or p.get("not_proposed") for p in mine],
             expansion=plan.get("expansion"))
    return plan


def view(ctx, dry_run=None) -> Future | dict:
    """`hive-plan`: the stored plan, or with dry_run=true one computed now, acting on nothing."""
    if isinstance(dry_run, str) and dry_run.lower() in ("true", "false"):
        dry_run = dry_run.lower() == "true"
    if dry_run is not None and not isinstance(dry_run, bool):
        raise errors.bad_param("dry_run", "expected true or false")
    if dry_run:
        return run(ctx, dry_run=True)
    last = store.last_plan(ctx.db.conn())
    out = {"plan": None if last is None else last[1],
           "next_cycle_at": None if last is None else last[0] + ctx.config().planner_interval,
           "saturation": store.saturation_rows(ctx.db.conn())}
    return out


def annotate_topology(ctx, view: dict) -> dict:
    """`hive-topology`'s targets with the last plan's fleet share and saturation."""
    last = store.last_plan(ctx.db.conn())
    shares = {t["peer_id"]: t["share_pct"] for t in (last[1].get("targets") or [])} \
        if last else {}
    held = store.saturated(ctx.db.conn())
    for t in view["targets"]:
        t["fleet_share_pct"] = shares.get(t["peer_id"])
        t["saturated"] = t["peer_id"] in held
    return view
