"""Governance modes on real SQLite with a manual clock: every path of advisor and
autonomous (the oracle's are in test_governance_oracle), the autonomous limits' edges,
the mode recorded on each action, the operator's commands and their errors, restarts,
and the notifications each step sends."""
import json

import pytest
from pyln.client import RpcException

from governance_sides import AMOUNT, TARGETS, gov, restart  # noqa: F401
from handlers.frame import errors
from handlers.governance import actions
from handlers.wire.framing import MsgType, encode
from hive_sides import Side, form_hive, pump
from intent_sides import signed_intent
from structlog.testing import capture_logs
from storage import hive as hive_store

DAY = 86400


def autonomous(side, budget=1_000_000, max_action=500_000, per_day=10):
    side.configure(governance_mode="autonomous", autonomous_budget_sat=budget,
                   autonomous_max_action_sat=max_action, autonomous_max_actions_per_day=per_day)


def executed(side, action_id):
    """Let the intent lock hold, commit and execute, then the action follow it."""
    side.run(side.config.intent_hold_seconds)
    side.run()
    return side.state(action_id)


# -- advisor ------------------------------------------------------------------------------
def test_advisor_waits_for_the_operator_then_executes_once_through_an_intent_lock(gov):
    a = gov.propose(reason="more inbound towards the exchange")
    assert (a["state"], a["mode"], a["origin"]) == ("awaiting_approval", "advisor", "operator")
    assert a["expires_at"] == a["created_at"] + gov.config.pending_action_expire_seconds
    gov.run(60)
    assert gov.state(a["id"]) == "awaiting_approval" and gov.opened() == 0
    approved = actions.approve(gov.ctx, a["id"])
    assert approved["state"] == "executing" and approved["approved_by"] == "operator"
    assert gov.dispatcher.load("intent_lock", approved["lock_id"]).state == "pending"
    with pytest.raises(RpcException, match="is executing: only an action awaiting approval"):
        actions.approve(gov.ctx, a["id"])                      # approving twice
    assert executed(gov, a["id"]) == "executed" and gov.opened() == 1
    view = actions.one(gov.ctx, a["id"])
    assert view["result"]["channel_id"] == "cc" * 32
    assert [(t["trigger"], t["to"]) for t in view["transitions"]] == [
        ("create", "proposed"), ("submit", "awaiting_approval"), ("approve", "approved"),
        ("start_execution", "executing"), ("execution_succeeded", "executed")]
    assert gov.notes.topics(a["id"]) == [
        "hive_action_proposed", "hive_action_awaiting_approval", "hive_action_decided",
        "hive_action_finished"]
    decided = [p for t, p in gov.notes.sent if t == "hive_action_decided"][0]
    assert (decided["state"], decided["mode"], decided["kind"]) == ("approved", "advisor",
                                                                   "channel_open")


def test_a_rejected_action_never_executes_and_cannot_be_approved(gov):
    a = gov.propose()
    out = actions.reject(gov.ctx, a["id"], "not now")
    assert (out["state"], out["rejected_reason"]) == ("rejected", "not now")
    with pytest.raises(RpcException, match="is rejected") as e:
        actions.approve(gov.ctx, a["id"])
    assert e.value.code == errors.ACTION_NOT_PENDING
    gov.run(DAY)
    assert gov.opened() == 0 and gov.notes.topics(a["id"])[-1] == "hive_action_decided"


def test_an_unanswered_action_expires_and_cannot_be_approved_after(gov):
    a = gov.propose()
    gov.run(gov.config.pending_action_expire_seconds - 1)
    assert gov.state(a["id"]) == "awaiting_approval"
    gov.run(1)
    assert gov.state(a["id"]) == "expired"
    with pytest.raises(RpcException, match="is expired"):
        actions.approve(gov.ctx, a["id"])
    assert gov.opened() == 0


def test_an_approved_action_whose_intent_cannot_be_announced_fails_with_the_reason(gov):
    first = gov.propose()
    actions.approve(gov.ctx, first["id"])                      # its intent holds the target
    second = gov.propose()
    out = actions.approve(gov.ctx, second["id"])
    assert out["state"] == "failed" and "intent not announced: target: held by" in out["failure"]
    assert executed(gov, first["id"]) == "executed" and gov.opened() == 1


def test_a_lost_intent_lock_fails_the_action(tmp_path, clock):
    from governance_sides import GovSide
    high, low = sorted([GovSide("a", tmp_path, clock), Side("b", tmp_path, clock)],
                       key=lambda s: s.node_id, reverse=True)
    gov_side, rival = (high, low) if isinstance(high, GovSide) else (low, high)
    form_hive(gov_side, rival)
    from handlers.intents import locks
    a = gov_side.propose()
    actions.approve(gov_side.ctx, a["id"])
    locks.announce(rival.ctx, "channel_open", TARGETS[0], AMOUNT)
    pump(gov_side, rival)
    gov_side.run(gov_side.config.intent_hold_seconds)
    gov_side.run()
    ours_won = gov_side.node_id < rival.node_id
    assert gov_side.state(a["id"]) == ("executed" if ours_won else "failed")
    if not ours_won:
        assert "aborted" in actions.view(gov_side.ctx, a["id"])["failure"]
    gov_side.close()
    rival.close()


# -- autonomous ---------------------------------------------------------------------------
def test_autonomous_approves_within_the_limits_and_executes(gov):
    autonomous(gov)
    a = gov.propose()
    assert (a["state"], a["mode"], a["approved_by"]) == ("executing", "autonomous", "autonomous")
    assert executed(gov, a["id"]) == "executed" and gov.opened() == 1
    assert gov.notes.topics(a["id"]) == ["hive_action_proposed", "hive_action_decided",
                                         "hive_action_finished"]


def test_the_budget_allows_exactly_its_amount_and_not_one_sat_more(gov):
    autonomous(gov, budget=300_000, max_action=300_000)
    assert gov.propose(TARGETS[0], 100_000)["approved_by"] == "autonomous"
    assert gov.propose(TARGETS[1], 200_000)["approved_by"] == "autonomous"   # exactly at it
    over = gov.propose(TARGETS[2], 1)
    assert over["state"] == "awaiting_approval" and over["mode"] == "autonomous"
    assert "200000 sat" not in over["waiting_reason"]
    assert over["waiting_reason"] == ("over the autonomous limits: 300000 sat approved "
                                      "autonomously in 24 h plus 1 sat exceeds the budget "
                                      "of 300000 sat")
    assert gov.notes.topics(over["id"]) == ["hive_action_proposed",
                                            "hive_action_awaiting_approval"]
    # The operator may still approve it: operator approvals do not spend the budget.
    assert actions.approve(gov.ctx, over["id"])["approved_by"] == "operator"


def test_the_budget_window_rolls_over_after_24_hours(gov):
    autonomous(gov, budget=300_000, max_action=300_000)
    gov.propose(TARGETS[0], 300_000)
    gov.run(DAY - 1)
    assert gov.propose(TARGETS[1], 1)["state"] == "awaiting_approval"
    gov.run(1)                          # the first approval is exactly 24 h old: still in
    assert gov.propose(TARGETS[2], 1)["state"] == "awaiting_approval"
    gov.run(1)
    assert gov.propose(TARGETS[3], 300_000)["approved_by"] == "autonomous"


def test_the_per_action_maximum_and_the_daily_count(gov):
    autonomous(gov, budget=10_000_000, max_action=200_000, per_day=2)
    assert gov.propose(TARGETS[0], 200_000)["approved_by"] == "autonomous"
    big = gov.propose(TARGETS[1], 200_001)
    assert big["state"] == "awaiting_approval" and "per-action maximum of 200000" in \
        big["waiting_reason"]
    assert gov.propose(TARGETS[2], 1)["approved_by"] == "autonomous"
    third = gov.propose(TARGETS[3], 1)
    assert "2 actions approved autonomously in 24 h; the limit is 2" in third["waiting_reason"]


def test_a_failed_execution_still_counts_against_the_budget(gov):
    autonomous(gov, budget=200_000, max_action=200_000)
    gov.propose(TARGETS[0], 100_000)
    clash = gov.propose(TARGETS[0], 100_000)             # target held: fails, but was approved
    assert clash["state"] == "failed"
    assert gov.propose(TARGETS[1], 1)["state"] == "awaiting_approval"


def test_the_mode_is_recorded_when_decided_and_never_rewritten(gov):
    waiting = gov.propose(TARGETS[0])
    autonomous(gov)
    assert gov.state(waiting["id"]) == "awaiting_approval"      # not approved by the switch
    gov.run(60)
    assert actions.view(gov.ctx, waiting["id"])["mode"] == "advisor"
    new = gov.propose(TARGETS[1])
    assert new["mode"] == "autonomous" and new["approved_by"] == "autonomous"
    gov.configure(governance_mode="advisor")
    assert actions.view(gov.ctx, new["id"])["mode"] == "autonomous"
    listed = actions.listing(gov.ctx, "awaiting_approval")
    assert listed["mode"] == "advisor" and [x["id"] for x in listed["actions"]] == [waiting["id"]]


# -- a local kind -------------------------------------------------------------------------
def test_clboss_ignore_executes_through_the_bridge(gov):
    a = gov.propose(TARGETS[5], None, kind="clboss_ignore")
    actions.approve(gov.ctx, a["id"])
    gov.settle()
    assert gov.state(a["id"]) == "executed"
    assert "open" in gov.lightning.call("clboss-status")["unmanaged"][TARGETS[5]]


# -- restarts -----------------------------------------------------------------------------
def test_a_restart_while_awaiting_approval_loses_nothing(gov):
    a = gov.propose()
    restart(gov)
    kept = actions.view(gov.ctx, a["id"])
    assert (kept["state"], kept["expires_at"]) == ("awaiting_approval", a["expires_at"])
    actions.approve(gov.ctx, a["id"])
    restart(gov)                                       # mid-execution: the intent holds
    assert executed(gov, a["id"]) == "executed" and gov.opened() == 1
    restart(gov)
    gov.run(DAY)
    assert gov.opened() == 1


def test_an_approval_a_crash_cut_short_starts_at_the_next_tick_once(gov):
    a = gov.propose()
    # The crash: approve committed, nothing started.
    gov.dispatcher.fire("pending_action", a["id"], "approve")
    restart(gov)
    gov.run()
    gov.run()
    assert gov.state(a["id"]) == "executing"
    assert executed(gov, a["id"]) == "executed" and gov.opened() == 1


def test_a_local_action_interrupted_mid_call_is_reconciled_not_repeated(gov):
    a = gov.propose(TARGETS[5], None, kind="clboss_ignore")
    gov.dispatcher.fire("pending_action", a["id"], "approve")
    gov.dispatcher.fire("pending_action", a["id"], "start_execution")     # then the crash
    restart(gov)
    out = actions.view(gov.ctx, a["id"])
    assert out["state"] == "failed" and "not repeated" in out["failure"]
    assert TARGETS[5] not in gov.lightning.call("clboss-status")["unmanaged"]


# -- the operator's bad input ------------------------------------------------------------
@pytest.mark.parametrize("args,kw,message", [
    (("open_bakery", TARGETS[0], 1), {}, "RpcException: kind: expected one of channel_open\\|rebalance\\|clboss_ignore\\|ban$"),
    (("channel_open", "nope", 1), {}, "RpcException: target: expected a node id"),
    (("channel_open", TARGETS[0], None), {}, "RpcException: amount_sat: a positive integer is required"),
    (("channel_open", TARGETS[0], 0), {}, "RpcException: amount_sat: a positive integer is required"),
    (("clboss_ignore", TARGETS[0], 5), {}, "RpcException: amount_sat: not used by clboss_ignore"),
    (("rebalance", TARGETS[0], 5), {"from_channel": None, "to_channel": None, "max_fee_sats": None},
     "RpcException: from_channel: required for rebalance"),
    (("channel_open", TARGETS[0], 5), {"max_fee_sats": 3}, "RpcException: max_fee_sats: not used by channel_open"),
    (("channel_open", TARGETS[0], 5, "x" * 501), {}, "RpcException: reason: a string of at most 500"),
    (("ban_peer", TARGETS[0], None), {}, "RpcException: kind: expected one of"),   # now `ban`
])
def test_bad_proposals_name_the_parameter_and_record_nothing(gov, args, kw, message):
    with pytest.raises(RpcException, match=message) as e:
        actions.propose(gov.ctx, *args, **kw)
    assert e.value.code == errors.INVALID_PARAMS
    assert actions.listing(gov.ctx)["actions"] == [] and gov.notes.sent == []


def test_commands_on_unknown_actions_and_states_name_the_parameter(gov):
    for call in (lambda: actions.approve(gov.ctx, "nope"), lambda: actions.one(gov.ctx, "nope"),
                 lambda: actions.reject(gov.ctx, "nope"), lambda: actions.one(gov.ctx, None)):
        with pytest.raises(RpcException, match="RpcException: id: "):
            call()
    with pytest.raises(RpcException, match="RpcException: state: expected one of proposed\\|"):
        actions.listing(gov.ctx, "pending")
    a = gov.propose()
    with pytest.raises(RpcException, match="RpcException: reason: "):
        actions.reject(gov.ctx, a["id"], 5)
    assert gov.state(a["id"]) == "awaiting_approval"


# -- ban_peer is no intent type any more --------------------------------------------------
def test_a_peer_still_sending_a_ban_peer_intent_is_refused_like_any_unknown_type(tmp_path, clock):
    a, b = Side("a", tmp_path, clock), Side("b", tmp_path, clock)
    form_hive(a, b)
    hive_id = hive_store.get_meta(a.db.conn())["hive_id"]
    before = a.snapshot()
    reasons = {}
    for kind in ("ban_peer", "open_bakery"):
        with capture_logs() as logs:
            a.receive(b, encode(MsgType.INTENT, signed_intent(b, hive_id, intent_type=kind,
                                                              amount_sat=None)))
        [event] = [e for e in logs if e["event"].endswith(".refused")]
        reasons[kind] = event["reason"].replace(kind, "<type>")
    assert reasons["ban_peer"] == reasons["open_bakery"]
    assert "intent_type" in reasons["ban_peer"]
    assert a.snapshot() == before
    a.close()
    b.close()


def test_an_action_from_before_the_upgrade_keeps_its_kind_and_fails_without_an_executor(
        gov, tmp_path):
    from storage.db import Database
    old = Database(str(tmp_path / "old.db"))
    old.migrate(target=8)
    with old.transaction() as conn:
        conn.execute("""INSERT INTO pending_actions (action_id, action_type, target, kind, state,
                            created_at, state_since, data)
                        VALUES ('x:1', 'ban_peer', ?, 'pending_action', 'awaiting_approval',
                                0, 0, '{"intent_id": "1"}')""", (TARGETS[0],))
    old.migrate()
    [row] = old.conn().execute("SELECT data, mode FROM pending_actions").fetchall()
    assert json.loads(row["data"])["kind"] == "ban_peer" and row["mode"] is None
    old.close()
    with gov.db.transaction():
        gov.dispatcher.create("pending_action", "x:1", data={"kind": "ban_peer",
                                                             "target": TARGETS[0]},
                              domain={"action_type": "ban_peer", "target": TARGETS[0]})
        gov.dispatcher.fire("pending_action", "x:1", "submit", mode="advisor")
    out = actions.approve(gov.ctx, "x:1")
    assert out["state"] == "failed" and out["failure"] == "no executor for kind 'ban_peer'"
