"""Approved actions execute once. `start_execution` is committed before anything runs: a
coordinated kind announces its intent lock in the same transaction (so a crash leaves
either an approved action with no intent, which the tick then starts, or an executing one
with its intent); a local kind is marked executing before its bridge call, and after a
restart mid-call it is reconciled against its effect, never run again.

The tick links executing coordinated actions to their intents' ends, and starts approved
actions a crash interrupted. At start, an oracle call in flight is not trusted: the
action waits for the operator (`reconcile`)."""
from __future__ import annotations

import structlog
from pyln.client import RpcException

from handlers.governance.kinds import COORDINATED, KINDS, LOCAL
from handlers.intents import locks as intents
from machines.intent_lock import SPEC as INTENT_SPEC
from machines.pending_action import SPEC
from storage import governance as store

log = structlog.get_logger("hive.governance")

KIND = SPEC.kind


class _NotStarted(Exception):
    """start_execution was refused: undo the intent announced with it."""


def execute(ctx, action_id: str) -> None:
    """On the worker: run an approved action (nothing if it is no longer approved)."""
    inst = ctx.dispatcher.load(KIND, action_id)
    if inst is None or inst.state != "approved":
        return
    action = inst.data
    kind = KINDS.get(action.get("kind"))
    if kind is None:
        return _failed(ctx, action_id, f"no executor for kind {action.get('kind')!r}")
    if kind.route == COORDINATED:
        return _announce(ctx, action_id, action)
    if not ctx.dispatcher.fire(KIND, action_id, "start_execution",
                               context={"via": kind.route}).ok:
        return
    if kind.route == LOCAL and ctx.bridge is None:
        return _failed(ctx, action_id, "no bridge to run it through")

    def done(why) -> None:
        if why is None:
            ctx.dispatcher.fire(KIND, action_id, "execution_succeeded",
                                data_update={"result": {"done": True}})
        else:
            _failed(ctx, action_id, why)
    kind.run(ctx, action, done)


def _announce(ctx, action_id, action) -> None:
    try:
        with ctx.db.transaction():
            res = intents.announce(ctx, action["kind"], action["target"], action["amount_sat"],
                                   **action.get("params", {}))
            out = ctx.dispatcher.fire(KIND, action_id, "start_execution",
                                      data_update={"lock_id": res["lock_id"]},
                                      context={"via": "intent_lock", "lock_id": res["lock_id"]})
            if not out.ok:
                raise _NotStarted()
    except _NotStarted:
        return
    except RpcException as e:    # the intent could not be announced (target held, ...)
        return _failed(ctx, action_id, f"intent not announced: {e.message}")
    log.info("governance.intent_announced", action_id=action_id, lock_id=res["lock_id"])


def _failed(ctx, action_id, why) -> None:
    ctx.dispatcher.fire(KIND, action_id, "execution_failed", data_update={"failure": why},
                        context={"error": why})


def on_tick(ctx) -> None:
    rows = store.in_states(ctx.db.conn(), ("approved", "executing"))
    for row in rows:
        if row["state"] == "approved":
            execute(ctx, row["action_id"])      # approved before a crash, never started
            continue
        lock_id = row["data"].get("lock_id")
        if lock_id is None:
            continue                            # a local kind: its bridge call ends it
        _follow_intent(ctx, row["action_id"], lock_id)


def _follow_intent(ctx, action_id, lock_id) -> None:
    intent = ctx.dispatcher.load(INTENT_SPEC.kind, lock_id)
    if intent is None:
        return _failed(ctx, action_id, f"its intent {lock_id} is gone; outcome unknown")
    if intent.state == "executed":
        ctx.dispatcher.fire(KIND, action_id, "execution_succeeded",
                            data_update={"result": intent.data.get("result")},
                            context={"lock_id": lock_id})
    elif intent.state in INTENT_SPEC.terminal:
        why = intent.data.get("failure") or f"its intent lock ended {intent.state}"
        _failed(ctx, action_id, why)


def reconcile(ctx) -> None:
    """At start. An oracle call in flight died with the process: its answer, if one came,
    is not trusted, and the oracle is not asked again (it may act on requests): the action
    waits for the operator. A local action caught mid-call is checked for its effect."""
    for row in store.in_states(ctx.db.conn(), ("consulting_oracle", "executing")):
        action_id = row["action_id"]
        if row["state"] == "consulting_oracle":
            why = "the oracle call was interrupted by a restart; decide with hive-approve-action"
            ctx.dispatcher.fire(KIND, action_id, "oracle_failed",
                                data_update={"waiting_reason": why}, context={"error": why})
            continue
        if row["data"].get("lock_id") is not None:
            continue                            # its intent reconciles itself
        kind = KINDS.get(row["data"].get("kind"))
        found = kind.effect_exists(ctx, row["data"]) if kind and kind.effect_exists else None
        if found:
            ctx.dispatcher.fire(KIND, action_id, "execution_succeeded",
                                data_update={"result": {"reconciled": True}},
                                context={"reconciled": "effect found"})
        else:
            _failed(ctx, action_id, "interrupted by a restart; cannot tell whether it took "
                                    "effect; not repeated")
