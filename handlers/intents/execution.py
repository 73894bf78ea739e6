"""What a committed local intent does once its hold ends, at most once: the tick announces
the commit, then runs the intent's executor (`executing` is committed first, so a crash
leaves evidence, never a second run); at start, intents a crash left `executing` are
reconciled against their effect. The tick also trims finished intents."""
from __future__ import annotations

import structlog

from handlers.bridge.pending import Pending
from handlers.intents.executors import EXECUTORS, ExecutionFailed
from handlers.intents.locks import (CLEANUP_AFTER, FINISHED, FUTURE_SKEW, INTAKE_WINDOW, KIND,
                                    commit_notice)
from handlers.membership import members as ms
from storage import intents as store
from storage import outbox

log = structlog.get_logger("hive.intents")


# -- the tick: announce commits, execute, clean up ------------------------------------------
def on_tick(ctx) -> None:
    # A committed intent past its lock window stays put until its expiry fires.
    committed = [r for r in store.in_state(ctx.db.conn(), "committed")
                 if r["data"].get("role") == "local"
                 and ctx.dispatcher.allows(KIND, r["lock_id"], "start_execution")]
    if committed:
        peers = ms.connected_members(ctx)
        with ctx.db.transaction() as conn:
            for row in committed:
                notice = commit_notice(row)
                for peer in peers if notice is not None else ():
                    outbox.add(conn, peer_id=peer, msg_hex=notice, now=ctx.clock.now())
        if ctx.drain is not None:
            ctx.drain()          # the commit notices leave before anything is executed
        for row in committed:
            execute(ctx, row["lock_id"])
    now = ctx.clock.now()
    with ctx.db.transaction() as conn:
        # Rows the intake bound or our own self-limit (a wider window) still count stay.
        removed = store.delete_finished(conn, finished_before=now - CLEANUP_AFTER, now=now,
                                        finished=FINISHED,
                                        announced_before=now - INTAKE_WINDOW - FUTURE_SKEW)
        store.delete_lapsed_acks(conn, now)
    if removed:
        log.info("intent.cleanup", removed=removed)


def execute(ctx, lock_id: str) -> None:
    """`executing` is committed before the executor runs: after a crash the intent is
    reconciled, never run twice."""
    inst = ctx.dispatcher.load(KIND, lock_id)
    intent = inst.data["intent"]
    executor = EXECUTORS.get(intent["intent_type"])
    if executor is None:     # a type an older release announced (ban_peer): never run
        if ctx.dispatcher.fire(KIND, lock_id, "start_execution").ok:
            _failed(ctx, lock_id, f"intent type {intent['intent_type']} is no longer executed")
        return
    try:
        before = executor.before(ctx, intent)
    except ExecutionFailed as e:
        before = {"unknown": str(e)}
    if not ctx.dispatcher.fire(KIND, lock_id, "start_execution",
                               data_update={"before": before}).ok:
        return
    try:
        result = executor.execute(ctx, intent)
    except ExecutionFailed as e:
        _failed(ctx, lock_id, str(e))
        return
    except Exception as e:       # a bug in an executor: the intent must still end
        log.error("intent.executor_fault", lock_id=lock_id, error=repr(e), exc_info=True)
        _failed(ctx, lock_id, f"executor fault: {e!r}")
        return
    if isinstance(result, Pending):     # its call runs on the bridge's pool: ends on its outcome
        result.then(lambda res, why: _finished(ctx, lock_id, res, why))
        return
    _finished(ctx, lock_id, result, None)


def _finished(ctx, lock_id, result, why) -> None:
    if why is not None:
        return _failed(ctx, lock_id, why)
    ctx.dispatcher.fire(KIND, lock_id, "execution_succeeded", data_update={"result": result},
                        context=result)


def _failed(ctx, lock_id, why) -> None:
    ctx.dispatcher.fire(KIND, lock_id, "execution_failed", data_update={"failure": why},
                        context={"error": why})


def reconcile(ctx) -> None:
    """At start: an intent found `executing` was interrupted by a crash. Ask its executor
    whether the effect exists; never run it again."""
    for row in store.in_state(ctx.db.conn(), "executing"):
        intent = row["data"]["intent"]
        executor = EXECUTORS.get(intent["intent_type"])
        try:
            found = None if executor is None else executor.effect_exists(
                ctx, intent, row["data"].get("before", {}))
        except ExecutionFailed as e:
            found, note = None, f" ({e})"
        else:
            note = ""
        if found:
            ctx.dispatcher.fire(KIND, row["lock_id"], "execution_succeeded",
                                data_update={"result": {"reconciled": True}},
                                context={"reconciled": "effect found"})
            continue
        why = "interrupted by a restart; " + ("effect not found" if found is False else
                                             "cannot tell whether it took effect") + note
        _failed(ctx, row["lock_id"], why)
