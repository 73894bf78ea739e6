"""The hive planner on real SQLite and the bridge's real pool: saturation with hysteresis
told to CLBoss, the deterministic assignment of an open to the richest member and its
proposal through governance, the gates, and the faults that skip or narrow a cycle."""
import pytest
from pyln.client import RpcException

from governance_sides import GovSide
from handlers.governance import actions
from handlers.planner import cycle, rules
from hive_sides import form_hive, pump
from planner_sides import Graph, node, plan_now, put_state
from storage import bridge as bridge_store
from storage import planner as store

X, Y, Z, W = node(1), node(2), node(3), node(4)
FAST = {"hive-planner-interval": 600}


def settings(**kw):
    base = dict(saturation_pct=20, release_pct=15, min_channel_sat=1_000_000,
                max_channel_sat=10_000_000, reserve_sat=500_000, max_feerate_perkw=10_000,
                stale_after=900)
    return rules.Settings(**(base | kw))


@pytest.mark.parametrize("fleet, was, expected", [
    (199, False, False),    # 19.9%: not yet
    (200, False, True),     # 20%: saturated
    (199, True, True),      # 19.9% once saturated: held (hysteresis)
    (150, True, True),      # 15%: still held
    (149, True, False),     # 14.9%: released
])
def test_saturation_edges_and_hysteresis(fleet, was, expected):
    assert rules.saturated(fleet, 1000, was, settings()) is expected


def test_a_private_fleet_channel_never_makes_a_share_above_100():
    assert rules.share_pct(500, 0) == 100.0 and rules.saturated(500, 0, False, settings())


def graph(a):
    """X: a's peer (share 30%); Y: two hops away, well connected; Z, W: Y's other peers."""
    return (Graph().channel(a, X, 300_000).channel(X, Y, 700_000)
            .channel(Y, Z, 2_000_000).channel(Y, W, 300_000))


@pytest.fixture
def fleet(tmp_path, clock):
    sides = [GovSide(n, tmp_path, clock, **FAST) for n in ("a", "b", "c")]
    form_hive(*sides)
    for s in sides:
        s.bridge.start(s.ctx)
        s.settle()
        s.lightning.graph = graph(sides[0].node_id)
    yield sides
    for s in sides:
        s.close()


def hivemap(sides, funds, peers=None, **kw):
    """The same HiveMap on every side: `funds` per side (by index), a's channel to X."""
    for s in sides:
        for i, m in enumerate(sides):
            put_state(s, m.node_id, available_sat=funds[i],
                      peers=(peers or {0: {X: 300_000}}).get(i, {}), **kw)


def run_intent(side, fleet):
    """The intent lock: members acknowledge (messages pumped), the hold passes, the
    executor runs."""
    pump(*fleet)
    side.run(side.config.intent_hold_seconds + 1)
    for _ in range(3):
        pump(*fleet)
        side.run(1)


def planned(side):
    return [a for a in actions.listing(side.ctx)["actions"] if a["origin"] == "planner"]


def test_three_members_compute_the_same_plan_and_only_the_richest_proposes(fleet):
    a, b, c = fleet
    hivemap(fleet, [5_000_000, 9_000_000, 2_000_000])
    plans = [plan_now(s) for s in fleet]
    same = rules.deterministic_part(plans[0])
    assert all(rules.deterministic_part(p) == same for p in plans)
    assert same["saturated"] == [X]
    assert same["proposals"] == [{"target": Y, "assignee": b.node_id, "amount_sat": 8_500_000}]
    assert [t["share_pct"] for t in same["targets"]] == [30.0]
    assert [len(planned(s)) for s in fleet] == [0, 1, 0]
    [act] = planned(b)
    assert (act["kind"], act["target"], act["amount_sat"], act["state"]) == \
        ("channel_open", Y, 8_500_000, "awaiting_approval")
    assert store.last_plan(b.db.conn())[1]["proposals"][0]["action_id"] == act["id"]


def test_equal_funds_go_to_the_lowest_pubkey(fleet):
    hivemap(fleet, [7_000_000, 7_000_000, 7_000_000])
    plan = plan_now(fleet[0])
    lowest = min(s.node_id for s in fleet)
    assert [p["assignee"] for p in plan["proposals"]] == [lowest]


def test_advisor_approval_opens_exactly_one_channel_by_the_assignee(fleet):
    a, b, c = fleet
    hivemap(fleet, [5_000_000, 9_000_000, 2_000_000])
    for s in fleet:
        plan_now(s)
    [act] = planned(b)
    actions.approve(b.ctx, act["id"])
    b.settle()
    run_intent(b, fleet)
    assert actions.view(b.ctx, act["id"])["state"] == "executed"
    assert [f["id"] for f in b.lightning.fundings] == [Y]
    assert b.lightning.fundings[0]["amount"] == 8_500_000
    assert a.lightning.fundings == [] and c.lightning.fundings == []
    # Y now has a fleet channel (b's, in the HiveMap): no member is assigned it again.
    hivemap(fleet, [5_000_000, 500_000, 2_000_000],
            peers={0: {X: 300_000}, 1: {Y: 8_500_000}}, version=2)
    plan = plan_now(b)
    assert Y not in [p["target"] for p in plan["proposals"]]


def test_autonomous_mode_opens_without_the_operator(fleet):
    a, b, c = fleet
    b.configure(governance_mode="autonomous", autonomous_max_action_sat=10_000_000,
                autonomous_budget_sat=10_000_000)
    hivemap(fleet, [5_000_000, 9_000_000, 2_000_000])
    plan_now(b)
    [act] = planned(b)
    assert act["state"] in ("approved", "executing")
    run_intent(b, fleet)
    assert actions.view(b.ctx, act["id"])["state"] == "executed"
    assert [f["id"] for f in b.lightning.fundings] == [Y]


def test_a_high_feerate_holds_the_open_back(fleet):
    a, b, c = fleet
    hivemap(fleet, [5_000_000, 9_000_000, 2_000_000])
    b.lightning.graph.feerate = 10_001
    plan = plan_now(b)
    assert plan["proposals"][0]["held"].startswith("opening feerate 10001 perkw is above")
    assert plan["expansion"].startswith("held:") and planned(b) == []
    b.lightning.graph.feerate = 10_000
    plan_now(b)
    assert len(planned(b)) == 1


def test_an_assignment_waits_for_the_hivemap_to_settle(fleet):
    a, b, c = fleet
    hivemap(fleet, [5_000_000, 9_000_000, 2_000_000])
    first = plan_now(b, settle=False)              # no previous cycle saw this HiveMap
    assert first["proposals"][0]["held"].startswith("the HiveMap changed") and planned(b) == []
    put_state(b, a.node_id, available_sat=5_000_001, peers={X: 300_000}, version=2)
    assert plan_now(b, settle=False)["expansion"].startswith("held: the HiveMap changed")
    plan_now(b, settle=False)                      # the same fleet hash a cycle later
    assert len(planned(b)) == 1


def test_one_planned_open_at_a_time_per_member(fleet):
    a, b, c = fleet
    hivemap(fleet, [5_000_000, 9_000_000, 2_000_000])
    plan_now(b)
    plan = plan_now(b)
    assert plan["proposals"][0]["not_proposed"].endswith("is still awaiting_approval")
    assert len(planned(b)) == 1


@pytest.mark.parametrize("mode, why", [("fail", "graph read failed: listchannels: gossipd"),
                                       ("garbage", "graph read failed: listchannels source=")])
def test_a_failed_graph_read_skips_the_cycle_and_changes_nothing(fleet, mode, why):
    a, b, c = fleet
    hivemap(fleet, [5_000_000, 9_000_000, 2_000_000])
    plan_now(b)
    held = store.saturation_rows(b.db.conn())
    b.lightning.graph.mode = mode
    b.lightning.graph.channels.append((X, Y, 100_000_000))     # would release X, were it read
    plan = plan_now(b)
    assert plan["skipped"].startswith(why) and plan["proposals"] == []
    assert store.saturation_rows(b.db.conn()) == held
    assert store.last_plan(b.db.conn())[1]["skipped"] == plan["skipped"]
    assert len(planned(b)) == 1          # the first cycle's only


def test_a_graph_read_that_times_out_skips_the_cycle(fleet, clock):
    a, b, c = fleet
    hivemap(fleet, [5_000_000, 9_000_000, 2_000_000])
    b.lightning.graph.mode = "hang"
    fut = cycle.run(b.ctx, dry_run=False)
    b.settle()
    assert not fut.done()
    clock.advance(4 * b.config.bridge_timeout_seconds)
    b.tick()
    plan = fut.result()
    assert plan["skipped"] == ("graph read failed: timed_out: no answer within the timeout; "
                               "nothing changed")
    assert planned(b) == [] and store.saturated(b.db.conn()) == set()


def test_a_stale_member_state_skips_expansion_and_holds_releases(fleet, clock):
    a, b, c = fleet
    hivemap(fleet, [5_000_000, 9_000_000, 2_000_000])
    plan_now(b)                                            # X saturated, one proposal
    actions.reject(b.ctx, planned(b)[0]["id"])
    clock.advance(3 * b.config.heartbeat_interval + 1)
    put_state(b, b.node_id, available_sat=9_000_000, version=2)   # b's own is fresh
    b.lightning.graph.channels.append((X, Z, 100_000_000))         # X's share falls to 0.3%
    plan = plan_now(b)
    assert plan["expansion"].startswith("skipped: the HiveMap state of member")
    assert "stale" in plan["expansion"] and plan["proposals"] == []
    assert store.saturated(b.db.conn()) == {X}
    assert f"target {X} not released: HiveMap incomplete" in plan["notes"]
    assert len(planned(b)) == 1


def test_a_member_without_its_funds_skips_expansion(fleet):
    a, b, c = fleet
    hivemap(fleet, [5_000_000, None, 2_000_000])
    plan = plan_now(b)
    assert plan["expansion"] == (f"skipped: the HiveMap state of member {b.node_id} lacks "
                                 "its on-chain funds")
    assert planned(b) == [] and plan["saturated"] == [X]


def test_saturation_tags_clboss_and_release_removes_only_our_tag(fleet):
    a, b, c = fleet
    clboss = b.lightning.models["cl" "boss"]
    clboss.unmanage(X, "lnfee")                 # another plugin's tag on X
    hivemap(fleet, [5_000_000, 9_000_000, 2_000_000])
    plan_now(b)
    b.settle()
    assert b.lightning.call("clboss-status")["unmanaged"][X] == "lnfee, open"
    assert bridge_store.our_tags(b.db.conn(), X) == {"open"}
    # 17.6% (300 of 1700): below 20, above 15: still saturated.
    b.lightning.graph.channels.append((X, Z, 700_000))
    assert plan_now(b)["targets"][0]["saturated"] is True
    # 14.9%: released, and only our tag comes off.
    b.lightning.graph.channels.append((X, W, 313_400))
    plan = plan_now(b)
    b.settle()
    assert plan["targets"][0]["share_pct"] < 15 and plan["targets"][0]["change"] == "released"
    assert b.lightning.call("clboss-status")["unmanaged"][X] == "lnfee"
    assert store.saturation_rows(b.db.conn()) == {}


def test_a_release_leaves_the_tag_an_operators_clboss_ignore_wants(fleet):
    a, b, c = fleet
    hivemap(fleet, [5_000_000, 9_000_000, 2_000_000])
    plan_now(b)
    b.settle()
    act = b.propose(target=X, amount=None, kind="clboss_ignore")
    actions.approve(b.ctx, act["id"])
    b.settle()
    assert actions.view(b.ctx, act["id"])["state"] == "executed"
    b.lightning.graph.channels += [(X, Z, 700_000), (X, W, 313_400)]      # 14.9%: released
    plan = plan_now(b)
    b.settle()
    assert plan["targets"][0]["change"] == "released"
    assert b.lightning.call("clboss-status")["unmanaged"][X] == "open"
    assert store.saturation_rows(b.db.conn()) == {}


def test_the_executor_refuses_a_saturated_target(fleet):
    a, b, c = fleet
    hivemap(fleet, [5_000_000, 9_000_000, 2_000_000])
    plan_now(b)
    act = b.propose(target=X, amount=1_000_000)
    actions.approve(b.ctx, act["id"])
    b.settle()
    run_intent(b, fleet)
    out = actions.view(b.ctx, act["id"])
    assert out["state"] == "failed" and "the target is saturated" in out["failure"]
    assert b.lightning.fundings == []


def test_the_executor_refuses_a_target_another_member_opened_to_meanwhile(fleet):
    a, b, c = fleet
    hivemap(fleet, [5_000_000, 9_000_000, 2_000_000])
    plan_now(b)
    [act] = planned(b)
    actions.approve(b.ctx, act["id"])
    b.settle()
    put_state(b, c.node_id, available_sat=1_000_000, peers={Y: 1_000_000}, version=2)
    run_intent(b, fleet)
    out = actions.view(b.ctx, act["id"])
    assert out["state"] == "failed" and f"member {c.node_id} has a channel" in out["failure"]
    assert b.lightning.fundings == []


def test_the_cycle_timer_is_stored_and_survives_a_restart(fleet, clock):
    a, b, c = fleet
    hivemap(fleet, [5_000_000, 9_000_000, 2_000_000])
    cycle.on_tick(b.ctx)                         # first start: the timer is set, no read
    assert store.last_plan(b.db.conn())[1]["skipped"] == cycle.FIRST
    assert b.lightning.graph.reads == []
    clock.advance(599)
    b.restart(clock)
    b.new_bridge()
    b.bridge.start(b.ctx)
    b.settle()
    cycle.on_tick(b.ctx)
    assert b.lightning.graph.reads == []         # not due yet, restart or not
    clock.advance(1)
    cycle.on_tick(b.ctx)
    b.settle()
    plan = store.last_plan(b.db.conn())[1]
    assert plan["saturated"] == [X] and len(planned(b)) == 1
    b.restart(clock)                             # the plan and its verdicts survive
    assert store.last_plan(b.db.conn())[1] == plan and store.saturated(b.db.conn()) == {X}


def test_dry_run_acts_on_nothing_and_bad_input_names_the_parameter(fleet):
    a, b, c = fleet
    hivemap(fleet, [5_000_000, 9_000_000, 2_000_000])
    fut = cycle.view(b.ctx, dry_run=True)
    b.settle()
    plan = fut.result()
    assert plan["dry_run"] is True and plan["proposals"][0]["ours"] is True
    assert planned(b) == [] and store.last_plan(b.db.conn()) is None
    assert store.saturation_rows(b.db.conn()) == {}
    with pytest.raises(RpcException) as e:
        cycle.view(b.ctx, dry_run="maybe")
    assert e.value.code == -32602 and "dry_run" in e.value.message
    assert cycle.view(b.ctx)["plan"] is None


def test_reads_are_per_node_never_the_whole_graph(fleet):
    a, b, c = fleet
    hivemap(fleet, [5_000_000, 9_000_000, 2_000_000])
    plan_now(b)
    reads = b.lightning.graph.reads
    assert all(m != "listchannels" or "source" in p for m, p in reads)
    assert {p["source"] for m, p in reads if m == "listchannels"} == {X, Y}


def test_banned_or_unannounced_nodes_are_no_candidates(fleet):
    a, b, c = fleet
    hivemap(fleet, [5_000_000, 9_000_000, 2_000_000])
    b.lightning.graph.unannounced.add(Y)
    assert plan_now(b)["candidates"] == []
    b.lightning.graph.unannounced.clear()
    assert [c["peer_id"] for c in plan_now(b, dry_run=True)["candidates"]] == [Y]


def test_release_must_stay_below_saturation_and_sizes_in_order(tmp_path):
    from handlers.frame import config as cfg
    c = cfg.from_init({}, str(tmp_path))
    assert (c.saturation_pct, c.saturation_release_pct) == (20, 15)
    with pytest.raises(cfg.ConfigError, match="hive-saturation-release-pct: 20 must be below "
                                              r"hive-saturation-pct \(20\)"):
        cfg.with_change(c, "hive-saturation-release-pct", "20")
    with pytest.raises(cfg.ConfigError, match="hive-saturation-release-pct: 15 must be below"):
        cfg.with_change(c, "hive-saturation-pct", "15")
    assert cfg.with_change(c, "hive-saturation-pct", "16").saturation_pct == 16
    with pytest.raises(cfg.ConfigError, match="hive-planner-max-channel-sat: 999999 must be"):
        cfg.with_change(c, "hive-planner-max-channel-sat", "999999")
    with pytest.raises(cfg.ConfigError, match="hive-planner-interval: 4 is out of range"):
        cfg.from_init({"hive-planner-interval": 4}, str(tmp_path))
