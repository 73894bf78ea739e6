"""The fleet's zero-fee policy between members, in the three setups (cl-revenue-ops v2,
v3, none), on admission, after a restart, on a new channel, and handed back on release."""
import pytest

from bridge_sides import BridgeSide
from handlers.bridge import fees
from handlers.council import leave
from handlers.membership import handshake, members
from hive_sides import form_hive, pump
from storage import bridge as store

OPTS = {"hive-bridge-check-seconds": 30, "hive-bridge-timeout-seconds": 15}


@pytest.fixture
def make_fleet(tmp_path, clock):
    made = []

    def make(n, **kw):
        sides = [BridgeSide(name, tmp_path, clock, **{**OPTS, **kw}) for name in "abcd"[:n]]
        made.extend(sides)
        for s in sides:
            s.bridge.start(s.ctx)
            s.settle()
        return sides
    yield make
    for s in made:
        s.close()


def formed(sides):
    form_hive(*sides)
    for s in sides:
        s.settle()
    return sides


def policy(side, peer):
    return side.lightning.models["cl-revenue-ops"].policies.get(peer.node_id)


def policy_calls(side, action):
    return [p for m, p in side.lightning.companion_calls
            if m == "revenue-policy" and p.get("action") == action]


def row(side, peer):
    return store.fee_policy(side.db.conn(), peer.node_id)


def test_v2_members_get_the_hive_strategy_on_admission(make_fleet):
    a, b = formed(make_fleet(2))
    assert policy(a, b)["strategy"] == "hive" and policy(b, a)["strategy"] == "hive"
    assert row(a, b)["settled"] and row(a, b)["applied_via"] == "cl-revenue-ops:hive"
    assert policy(a, a) is None                       # never ourselves


def test_v3_members_get_static_zero(make_fleet):
    a, b = formed(make_fleet(2, revenue_version="3.0.0"))
    assert (policy(a, b)["strategy"], policy(a, b)["fee_ppm_target"]) == ("static", 0)
    assert row(a, b)["applied_via"] == "cl-revenue-ops:static:0"


@pytest.mark.parametrize("version,strategy", [("2.1.0", "passive"), ("3.0.0", "passive")])
def test_release_is_passive_never_a_delete(make_fleet, version, strategy):
    a, b = formed(make_fleet(2, revenue_version=version))
    fees.release_member(a.ctx, b.node_id)
    a.settle()
    assert policy(a, b)["strategy"] == strategy and policy_calls(a, "delete") == []
    assert row(a, b)["wanted"] == "released" and row(a, b)["settled"]


def test_without_revenue_ops_setchannel_zero_and_clboss_lnfee_then_restored(make_fleet, clock):
    a, b = make_fleet(2, revenue_version=None)
    clock.advance(30)                    # a second detection confirms it is not there
    for s in (a, b):
        s.tick()
    a.lightning.add_channel(b.node_id, "1x1x1", base=1000, ppm=50)
    a.lightning.models["clboss"].unmanage(b.node_id, "balance")     # not ours
    formed([a, b])
    assert a.lightning.local_fees("1x1x1") == (0, 0)
    assert row(a, b)["replaced"] == {"1x1x1": [1000, 50]}
    assert a.lightning.call("clboss-status")["unmanaged"][b.node_id] == "balance, lnfee"
    # A new channel to the member is zeroed at the next sweep.
    a.lightning.add_channel(b.node_id, "2x2x2", base=500, ppm=7)
    clock.advance(30)
    a.tick()
    assert a.lightning.local_fees("2x2x2") == (0, 0)
    fees.release_member(a.ctx, b.node_id)
    a.settle()
    assert a.lightning.local_fees("1x1x1") == (1000, 50) and a.lightning.local_fees("2x2x2") == (500, 7)
    assert a.lightning.call("clboss-status")["unmanaged"][b.node_id] == "balance"
    assert row(a, b)["settled"] and row(a, b)["replaced"] == {}


def test_after_a_restart_lost_policies_are_set_again_in_one_batch(make_fleet):
    a, b, c, d = formed(make_fleet(4))
    a.lightning.models["cl-revenue-ops"].policies.clear()      # the companion lost them
    batches = len(policy_calls(a, "batch"))
    a.new_bridge()                                   # a restart
    a.bridge.start(a.ctx)
    a.settle()
    a.tick()
    assert all(policy(a, x)["strategy"] == "hive" for x in (b, c, d))
    [batch] = policy_calls(a, "batch")[batches:]
    assert sorted(u["peer_id"] for u in batch["updates"]) == sorted(x.node_id for x in (b, c, d))


def test_a_timed_out_set_is_reconciled_not_repeated(make_fleet, clock):
    a, b = make_fleet(2)
    a.lightning.modes["cl-revenue-ops"] = "hang"
    formed([a, b])
    clock.advance(15)
    a.tick()                                         # the list timed out
    assert not row(a, b)["settled"] and "revenue-policy list" in row(a, b)["last_error"]
    # It did land after all (say the companion applied it late); the next sweep sees it.
    a.lightning.release_hung()
    a.settle()                                       # the late answers, ignored
    a.lightning.modes["cl-revenue-ops"] = "ok"
    a.lightning.models["cl-revenue-ops"].policy("set", b.node_id, "hive")
    sets_before = len(policy_calls(a, "set"))
    clock.advance(30)
    a.tick()
    assert row(a, b)["settled"] and len(policy_calls(a, "set")) == sets_before


def test_an_error_body_is_a_failure(make_fleet):
    a, b = make_fleet(2)
    rev = a.lightning.models["cl-revenue-ops"]
    for _ in range(10):                                # use up the per-peer limit
        rev.policy("set", b.node_id, "passive")
    formed([a, b])
    assert not row(a, b)["settled"] and "Rate limit" in row(a, b)["last_error"]
    assert policy(a, b)["strategy"] == "passive"


def test_cl_revenue_ops_not_yet_active_at_start_is_not_replaced_by_setchannel(make_fleet, clock):
    a, b = make_fleet(2)
    rev = a.lightning.models["cl-revenue-ops"]
    a.lightning.models["cl-revenue-ops"] = None       # still starting when we first look
    a.new_bridge()
    a.bridge.start(a.ctx)
    a.settle()
    a.lightning.add_channel(b.node_id, "1x1x1", base=1000, ppm=50)
    formed([a, b])
    assert a.lightning.local_fees("1x1x1") == (1000, 50) and not row(a, b)["settled"]
    a.lightning.models["cl-revenue-ops"] = rev        # now active
    clock.advance(30)
    a.tick()
    assert policy(a, b)["strategy"] == "hive" and a.lightning.local_fees("1x1x1") == (1000, 50)


def test_releasing_a_member_we_never_managed_changes_nothing(make_fleet):
    a, b = make_fleet(2)
    stranger = "02" + "99" * 32
    fees.release_member(a.ctx, stranger)
    a.settle()
    assert store.fee_policy(a.db.conn(), stranger) is None
    assert stranger not in a.lightning.models["cl-revenue-ops"].policies


def test_a_node_that_leaves_releases_every_member_it_managed(make_fleet):
    a, b, c = formed(make_fleet(3))
    assert policy(b, a)["strategy"] == "hive" and policy(b, c)["strategy"] == "hive"
    assert leave.leave(b.ctx)["left"] is True
    b.settle()
    assert policy(b, a)["strategy"] == "passive" and policy(b, c)["strategy"] == "passive"
    assert row(b, a)["wanted"] == "released" and row(b, c)["wanted"] == "released"
    assert policy_calls(b, "delete") == []


def test_a_node_that_rejoins_admits_every_member_again(make_fleet, clock):
    a, b, c = formed(make_fleet(3))
    leave.leave(b.ctx)
    pump(a, b, c)
    b.settle()
    assert policy(b, a)["strategy"] == "passive"
    clock.advance(60)
    ticket = members.invite(a.ctx, None, None, None)["ticket"]
    handshake.start_join(b.ctx, ticket, None)
    pump(a, b, c)
    b.settle()
    assert policy(b, a)["strategy"] == "hive" and policy(b, c)["strategy"] == "hive"
    assert row(b, a)["wanted"] == "fleet" and row(b, c)["wanted"] == "fleet"
