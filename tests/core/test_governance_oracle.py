"""Oracle mode against a real HTTP server on 127.0.0.1, the call really running on the
bridge's pool: only a well-formed approve approves; every failure leaves the action
waiting for the operator with the reason, and nothing executes by accident. Also: the
operator deciding while the oracle is asked, the persisted deadline, a restart mid-call."""
import json
import re
import threading
from pathlib import Path

import jsonschema
import pytest

from governance_sides import TARGETS, closed_port_url, gov, oracle, restart  # noqa: F401
from handlers.governance import actions
from handlers.governance import oracle as oracle_mod

ORACLE_DOC = (Path(__file__).resolve().parents[2] / "docs" / "ORACLE.md").read_text()
# The doc's JSON blocks, in order: request example, request schema, response example,
# response schema.
REQUEST_EXAMPLE, REQUEST_SCHEMA, RESPONSE_EXAMPLE, RESPONSE_SCHEMA = [
    json.loads(b) for b in re.findall(r"```json\n(.*?)```", ORACLE_DOC, re.S)]
HUGE = b'{"decision": "approve", "reason": "' + b"x" * (oracle_mod.MAX_RESPONSE_BYTES + 10) + b'"}'


@pytest.fixture
def asked(gov, oracle):
    gov.configure(governance_mode="oracle", oracle_url=oracle.url, oracle_timeout_seconds=1)
    return gov


def test_approve_executes_and_the_request_is_the_documented_one(asked, oracle):
    a = asked.propose(reason="the planner's pick")
    assert a["state"] == "executing" and a["approved_by"] == "oracle"
    assert a["oracle"] == {"decision": "approve", "reason": "fine"}
    [req] = oracle.requests
    assert req["type"] == "application/json" and req["path"] == "/decide"
    body = req["body"]
    assert body["schema"] == "cl-hive/oracle-request/1" and body["node_id"] == asked.node_id
    assert body["action"] == {"id": a["id"], "kind": "channel_open", "target": a["target"],
                              "amount_sat": 100_000, "params": {}, "reason": "the planner's pick",
                              "origin": "operator", "created_at": a["created_at"]}
    jsonschema.validate(body, REQUEST_SCHEMA)            # docs/ORACLE.md describes it
    asked.run(asked.config.intent_hold_seconds)
    asked.run()
    assert asked.state(a["id"]) == "executed" and asked.opened() == 1
    assert asked.notes.topics(a["id"]) == ["hive_action_proposed", "hive_action_decided",
                                           "hive_action_finished"]


def test_the_documented_examples_fit_the_documented_schemas_and_the_answer_decides():
    jsonschema.validate(REQUEST_EXAMPLE, REQUEST_SCHEMA)
    jsonschema.validate(RESPONSE_EXAMPLE, RESPONSE_SCHEMA)
    assert oracle_mod.parse(json.dumps(RESPONSE_EXAMPLE).encode()) == RESPONSE_EXAMPLE
    for wrong in ({"decision": "maybe"}, {"reason": "x"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(wrong, RESPONSE_SCHEMA)
        assert "unusable" in oracle_mod.parse(json.dumps(wrong).encode())


def test_reject_rejects_with_the_oracles_reason(asked, oracle):
    oracle.answer = (200, b'{"decision": "reject", "reason": "too big"}', 0)
    a = asked.propose()
    assert (a["state"], a["oracle"]["reason"]) == ("rejected", "too big")
    asked.run(86400)
    assert asked.opened() == 0


@pytest.mark.parametrize("answer,why", [
    ((200, b'{"decision": "approve"}', 2.5), "no answer within 1 s"),      # slower than the timeout
    ((500, b'{"decision": "approve"}', 0), "HTTP status 500"),
    ((302, b'{"decision": "approve"}', 0), "HTTP status 302"),
    ((200, b'{"decision": "approve"', 0), "the answer is not JSON"),
    ((200, b'["approve"]', 0), "not a JSON object"),
    ((200, b'{"decision": "APPROVE"}', 0), "unknown decision 'APPROVE'"),
    ((200, b'{"decision": "approve", "reason": 5}', 0), "reason is not a string"),
    ((200, b'{"verdict": "approve"}', 0), "unknown decision 'None'"),
    ((200, HUGE, 0), f"answer larger than {oracle_mod.MAX_RESPONSE_BYTES} bytes"),
])
def test_no_failure_approves_by_accident(asked, oracle, answer, why):
    oracle.answer = answer
    a = asked.propose()
    if answer[2]:                       # slower than the timeout: the pool's tick reports it
        asked.run(asked.config.oracle_timeout_seconds)
        a = actions.view(asked.ctx, a["id"])
    assert a["state"] == "awaiting_approval", a
    assert why in a["waiting_reason"] and a["approved_by"] is None
    assert asked.notes.topics(a["id"]) == ["hive_action_proposed",
                                           "hive_action_awaiting_approval"]
    asked.run(60)
    assert asked.opened() == 0 and asked.state(a["id"]) == "awaiting_approval"


def test_a_refused_connection_waits_for_the_operator(asked):
    asked.configure(oracle_url=closed_port_url())
    a = asked.propose()
    assert a["state"] == "awaiting_approval" and "cannot reach the oracle" in a["waiting_reason"]
    assert actions.approve(asked.ctx, a["id"])["approved_by"] == "operator"


def _held(asked, oracle):
    """An action whose oracle call is in flight (the server holds its answer)."""
    oracle.gate = threading.Event()
    out = actions.propose(asked.ctx, "channel_open", TARGETS[0], 100_000, "x")
    assert out["state"] == "consulting_oracle"
    return out


def _late_answer(asked, oracle):
    """Let the held answer come back and run it on the (test's) worker."""
    oracle.gate.set()
    with asked.lightning.cond:
        assert asked.lightning.cond.wait_for(lambda: asked.inbox, 10)
    asked.settle()


def test_the_operator_may_decide_while_the_oracle_is_asked_and_the_late_answer_is_refused(
        asked, oracle):
    a = _held(asked, oracle)
    actions.reject(asked.ctx, a["id"], "changed my mind")
    _late_answer(asked, oracle)                      # the oracle said approve
    assert asked.state(a["id"]) == "rejected"
    asked.run(86400)
    assert asked.opened() == 0


def test_the_operator_may_approve_while_the_oracle_is_asked_and_a_late_reject_changes_nothing(
        asked, oracle):
    a = _held(asked, oracle)
    oracle.answer = (200, b'{"decision": "reject", "reason": "no"}', 0)
    assert actions.approve(asked.ctx, a["id"])["approved_by"] == "operator"
    _late_answer(asked, oracle)
    out = actions.view(asked.ctx, a["id"])
    assert out["state"] == "executing" and out["oracle"] is None
    asked.run(asked.config.intent_hold_seconds)
    asked.run()
    assert asked.state(a["id"]) == "executed" and asked.opened() == 1


def test_the_persisted_deadline_ends_a_call_that_never_answers(asked, oracle):
    a = _held(asked, oracle)
    asked.pool.inflight.clear()      # as if the pool lost it: only the persisted deadline is left
    asked.clock.advance(asked.config.oracle_deadline_seconds)
    asked.dispatcher.fire_due()
    out = actions.view(asked.ctx, a["id"])
    assert out["state"] == "awaiting_approval"
    assert out["expires_at"] == a["created_at"] + asked.config.pending_action_expire_seconds


def test_a_restart_mid_call_neither_loses_nor_approves_the_action(asked, oracle):
    a = _held(asked, oracle)
    restart(asked)
    out = actions.view(asked.ctx, a["id"])
    assert out["state"] == "awaiting_approval" and "interrupted by a restart" in \
        out["waiting_reason"]
    _late_answer(asked, oracle)      # an approve from the call before the restart
    assert asked.state(a["id"]) == "awaiting_approval"
    assert len(oracle.requests) == 1                 # not asked again
    actions.approve(asked.ctx, a["id"])
    asked.run(asked.config.intent_hold_seconds)
    asked.run()
    assert asked.state(a["id"]) == "executed" and asked.opened() == 1
    triggers = [t["trigger"] for t in actions.one(asked.ctx, a["id"])["transitions"]]
    assert triggers == ["create", "submit", "oracle_failed", "approve", "start_execution",
                        "execution_succeeded"]
