"""Pending actions: proposing one (the planner, a rule, or the operator's
hive-propose-action), the mode's decision at submit, the operator's approve and reject,
and the views. Execution is in `execution`, the oracle's call in `oracle`."""
from __future__ import annotations

import secrets

import structlog
from pyln.client import RpcException

from handlers.bridge import companions
from handlers.frame import errors
from handlers.frame.clock import unix
from handlers.governance import execution, oracle
from handlers.governance.kinds import ALL_PARAMS, KINDS
from machines import guards
from machines.pending_action import SPEC
from storage import governance as store
from storage import transition_log

log = structlog.get_logger("hive.governance")

KIND = SPEC.kind
DECIDABLE = SPEC.groups["decidable"]
ORIGINS = ("planner", "operator", "rule")
MAX_REASON = 500


def _reason(value, name="reason") -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_REASON:
        raise errors.bad_param(name, f"a string of at most {MAX_REASON} characters")
    return value


def propose(ctx, kind, target, amount_sat=None, reason=None, origin="operator",
            **params) -> dict:
    """Record a new action and let the governance mode decide it. Returns its view."""
    spec = KINDS.get(kind)
    if spec is None:
        raise errors.bad_param("kind", "expected one of " + "|".join(KINDS))
    unknown = sorted(set(params) - set(ALL_PARAMS))
    if unknown:
        raise errors.bad_param(unknown[0], "not a parameter of any action kind")
    carried = spec.check(target, amount_sat, params)
    reason = _reason(reason)
    if origin not in ORIGINS:
        raise ValueError(f"unknown origin {origin!r}")
    action_id = secrets.token_hex(8)
    data = {"kind": kind, "target": target, "amount_sat": amount_sat, "params": carried,
            "reason": reason, "origin": origin}
    with ctx.db.transaction():
        ctx.dispatcher.create(KIND, action_id, data=data,
                              domain={"action_type": kind, "target": target,
                                      "amount_sat": amount_sat, "origin": origin},
                              context={"origin": origin, "reason": reason})
        dest = _submit(ctx, action_id, amount_sat)
    log.info("governance.proposed", action_id=action_id, kind=kind, target=target,
             amount_sat=amount_sat, origin=origin, state=dest)
    _after_decision(ctx, action_id, dest)
    return view(ctx, action_id)


def _submit(ctx, action_id, amount_sat) -> str:
    """The mode decides; the mode is recorded on the action with the decision."""
    config = ctx.config()
    mode = config.governance_mode
    now = ctx.clock.now()
    limits, update = {}, {"mode": mode}
    if mode == "autonomous":
        spent, count = store.approved_since(ctx.db.conn(), "autonomous",
                                            now - guards.AUTONOMOUS_WINDOW)
        limits = {"amount_sat": amount_sat or 0, "spent_sat": spent, "count": count,
                  "budget_sat": config.autonomous_budget_sat,
                  "max_action_sat": config.autonomous_max_action_sat,
                  "max_actions": config.autonomous_max_actions_per_day}
        over = guards.autonomous_limit_exceeded(
            limits["amount_sat"], spent, count, limits["budget_sat"],
            limits["max_action_sat"], limits["max_actions"])
        if over is not None:
            update["waiting_reason"] = f"over the autonomous limits: {over}"
    with ctx.db.transaction() as conn:
        out = ctx.dispatcher.fire(KIND, action_id, "submit", now=now, mode=mode,
                                  data_update=update, context={"mode": mode, **update},
                                  **limits)
        if not out.ok:
            raise RuntimeError(f"pending action {action_id}: submit refused ({out.refused})")
        store.record_mode(conn, action_id, mode)
        if out.dest == "approved":
            store.record_approval(conn, action_id, "autonomous", now)
    return out.dest


def _after_decision(ctx, action_id, dest) -> None:
    if dest == "approved":
        execution.execute(ctx, action_id)
    elif dest == "consulting_oracle":
        oracle.consult(ctx, action_id)


def _load_for_decision(ctx, action_id, verb):
    if not isinstance(action_id, str) or not action_id:
        raise errors.bad_param("id", "expected an action id (see hive-pending-actions)")
    inst = ctx.dispatcher.load(KIND, action_id)
    if inst is None:
        raise errors.bad_param("id", f"no action {action_id}")
    if inst.state not in DECIDABLE:
        raise RpcException(f"action {action_id} is {inst.state}: only an action awaiting "
                           f"approval can be {verb}", errors.ACTION_NOT_PENDING)
    return inst


def approve(ctx, action_id) -> dict:
    """The operator approves: the action executes once (a second approve is refused).
    Refused while the companion it runs through cannot be called (it stays awaiting)."""
    inst = _load_for_decision(ctx, action_id, "approved")
    companions.require(ctx, inst.data.get("kind"))
    now = ctx.clock.now()
    with ctx.db.transaction() as conn:
        out = ctx.dispatcher.fire(KIND, action_id, "approve", now=now,
                                  data_update={"decided_by": "operator"},
                                  context={"by": "operator"})
        if out.ok:
            store.record_approval(conn, action_id, "operator", now)
    if out.ok:
        _after_decision(ctx, action_id, out.dest)
    return view(ctx, action_id)


def reject(ctx, action_id, reason=None) -> dict:
    reason = _reason(reason)
    _load_for_decision(ctx, action_id, "rejected")
    ctx.dispatcher.fire(KIND, action_id, "reject",
                        data_update={"decided_by": "operator", "rejected_reason": reason},
                        context={"by": "operator", "reason": reason})
    return view(ctx, action_id)


# -- views ------------------------------------------------------------------------------
def _shape(row) -> dict:
    data = row["data"]
    return {"id": row["action_id"], "kind": row["action_type"], "target": row["target"],
            "amount_sat": row["amount_sat"], "params": data.get("params", {}),
            "reason": data.get("reason"), "origin": row["origin"], "state": row["state"],
            "mode": row["mode"], "approved_by": row["approved_by"],
            "approved_at": unix(row["approved_at"]), "created_at": unix(row["created_at"]),
            "expires_at": unix(row["deadline"]) if row["deadline_trigger"] == "expire" else None,
            "waiting_reason": data.get("waiting_reason"),
            "rejected_reason": data.get("rejected_reason"),
            "oracle": data.get("oracle"), "lock_id": data.get("lock_id"),
            "result": data.get("result"), "failure": data.get("failure")}


def view(ctx, action_id) -> dict | None:
    row = store.get(ctx.db.conn(), action_id)
    return None if row is None else _shape(row)


def listing(ctx, state=None) -> dict:
    if state is not None and state not in SPEC.states:
        raise errors.bad_param("state", "expected one of " + "|".join(SPEC.states))
    return {"mode": ctx.config().governance_mode,
            "actions": [_shape(r) for r in store.listing(ctx.db.conn(), state)]}


def one(ctx, action_id) -> dict:
    if not isinstance(action_id, str) or not action_id:
        raise errors.bad_param("id", "expected an action id (see hive-pending-actions)")
    out = view(ctx, action_id)
    if out is None:
        raise errors.bad_param("id", f"no action {action_id}")
    out["transitions"] = [
        {"at": unix(t["at"]), "trigger": t["trigger"], "from": t["source"], "to": t["dest"],
         "context": t["context"]}
        for t in transition_log.for_instance(ctx.db.conn(), KIND, action_id)]
    return out
