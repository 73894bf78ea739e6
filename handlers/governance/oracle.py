"""Oracle mode: the action is POSTed as JSON to `hive-oracle-url` (docs/ORACLE.md), off the
worker on the bridge's pool (lane `oracle`); the answer comes back onto the worker and
fires the action's trigger there.

Only a well-formed 2xx answer `{"decision": "approve"|"reject"}` decides. Anything else
(a timeout, a refused connection, a redirect or other non-2xx status, a body over
MAX_RESPONSE_BYTES, malformed JSON, an unknown decision) never approves: the action waits
for the operator, with the reason recorded. The pool's timeout is in memory; the
`consulting_oracle` state's persisted deadline and `execution.reconcile` cover a restart."""
from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request

import structlog

from handlers.bridge.pool import CallOutcome
from handlers.governance import execution
from machines.pending_action import SPEC
from storage import governance as store
from storage import hive as hive_store

log = structlog.get_logger("hive.governance")

KIND = SPEC.kind
LANE = "oracle"
SCHEMA = "cl-hive/oracle-request/1"
MAX_RESPONSE_BYTES = 64 * 1024
MAX_REASON = 500
DECISIONS = {"approve": "oracle_approved", "reject": "oracle_rejected"}


def request_body(ctx, row) -> dict:
    meta = hive_store.get_meta(ctx.db.conn())
    data = row["data"]
    return {"schema": SCHEMA, "node_id": ctx.node_id,
            "hive_id": meta["hive_id"] if meta else None,
            "action": {"id": row["action_id"], "kind": row["action_type"],
                       "target": row["target"], "amount_sat": row["amount_sat"],
                       "params": data.get("params", {}), "reason": data.get("reason"),
                       "origin": row["origin"], "created_at": row["created_at"]}}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None         # a redirect is a non-2xx answer, not a second request


_OPENER = urllib.request.build_opener(_NoRedirect)


def post(url: str, body: dict, timeout: float, max_bytes: int = MAX_RESPONSE_BYTES) -> dict:
    """On a pool thread. {"decision": ..., "reason": ...} or {"unusable": why}; never
    raises for anything an oracle (or the network) can do wrong."""
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          "User-Agent": "cl-hive"})
    deadline = time.monotonic() + timeout
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            raw = bytearray()
            while len(raw) <= max_bytes:
                if time.monotonic() > deadline:
                    return {"unusable": f"no complete answer within {timeout:g} s"}
                chunk = resp.read(8192)
                if not chunk:
                    break
                raw += chunk
            if len(raw) > max_bytes:
                return {"unusable": f"answer larger than {max_bytes} bytes"}
    except urllib.error.HTTPError as e:
        return {"unusable": f"HTTP status {e.code}"}
    except urllib.error.URLError as e:
        return {"unusable": f"cannot reach the oracle: {e.reason}"}
    except (TimeoutError, OSError) as e:
        return {"unusable": f"no answer within {timeout:g} s" if isinstance(e, TimeoutError)
                else f"connection failed: {e}"}
    except http.client.HTTPException as e:
        return {"unusable": f"malformed HTTP answer: {e!r}"}
    return parse(bytes(raw))


def parse(raw: bytes) -> dict:
    try:
        answer = json.loads(raw)
    except ValueError:
        return {"unusable": "the answer is not JSON"}
    if not isinstance(answer, dict):
        return {"unusable": "the answer is not a JSON object"}
    decision = answer.get("decision")
    if decision not in DECISIONS:
        return {"unusable": f"unknown decision {str(decision)[:40]!r}"}
    reason = answer.get("reason")
    if reason is not None and not isinstance(reason, str):
        return {"unusable": "reason is not a string"}
    return {"decision": decision, "reason": (reason or "")[:MAX_REASON]}


def consult(ctx, action_id: str) -> None:
    """On the worker: ask the oracle about an action in consulting_oracle."""
    row = store.get(ctx.db.conn(), action_id)
    if row is None or row["state"] != "consulting_oracle":
        return
    config = ctx.config()
    url, timeout = config.oracle_url, config.oracle_timeout_seconds
    body = request_body(ctx, row)
    if url is None:
        return answered(ctx, action_id, {"unusable": "hive-oracle-url is not set"})
    if ctx.bridge is None:          # handler tests without a pool: asked right here
        return answered(ctx, action_id, post(url, body, timeout))

    def done(outcome: CallOutcome) -> None:
        if outcome.ok and isinstance(outcome.result, dict):
            return answered(ctx, action_id, outcome.result)
        answered(ctx, action_id, {"unusable": outcome.error or outcome.status})
    ctx.bridge.pool.start(LANE, "oracle POST", {}, ctx.clock.now() + timeout, done,
                          run=lambda: post(url, body, timeout))


def answered(ctx, action_id: str, answer: dict) -> None:
    """On the worker: the oracle's answer (or why there is none) decides, or the action
    waits for the operator. An action decided meanwhile refuses the late trigger."""
    decision = answer.get("decision")
    if decision in DECISIONS:
        record = {"decision": decision, "reason": answer.get("reason")}
        now = ctx.clock.now()
        with ctx.db.transaction() as conn:
            out = ctx.dispatcher.fire(KIND, action_id, DECISIONS[decision], now=now,
                                      data_update={"oracle": record, "decided_by": "oracle"},
                                      context={"by": "oracle", **record})
            if out.ok and out.dest == "approved":
                store.record_approval(conn, action_id, "oracle", now)
        log.info("governance.oracle_answered", action_id=action_id, decision=decision,
                 applied=out.ok)
        if out.ok and out.dest == "approved":
            execution.execute(ctx, action_id)
        return
    why = f"oracle: {answer.get('unusable') or 'no decision'}"
    log.info("governance.oracle_unusable", action_id=action_id, reason=why)
    ctx.dispatcher.fire(KIND, action_id, "oracle_failed",
                        data_update={"oracle": {"error": why}, "waiting_reason": why},
                        context={"error": why})
