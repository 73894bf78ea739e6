"""The throttle reaches the bridge's fee policy: a throttled member's channels leave the
zero-fee fleet policy (setchannel restores the fees it replaced; cl-revenue-ops gets
`passive`) and come back when the throttle lifts; a restart does not re-zero a throttled
member, and admission does not either."""
import pytest

from bridge_sides import BridgeSide
from contribution_sides import OPTS, TO_B, TO_C, TO_X, hive_of_three, settled
from handlers.bridge import fees
from handlers.contribution import flow
from storage import bridge as bridge_store
from storage import contribution as store


@pytest.fixture
def make_fleet(tmp_path, clock):
    made = []

    def make(**kw):
        sides = [BridgeSide(n, tmp_path, clock, **{"hive-bridge-check-seconds": 30, **OPTS}, **kw)
                 for n in "abc"]
        made.extend(sides)
        for s in sides:
            s.bridge.start(s.ctx)
            s.settle()
        clock.advance(30)                    # a second detection settles which path is used
        for s in sides:
            s.tick()
        return sides
    yield make
    for s in made:
        s.close()


def tick(side, ledger):
    flow.on_tick(side.ctx, ledger)
    side.settle()


def throttle_b(a, ledger):
    ledger.offer(settled(TO_C, TO_B, 10_000))        # b takes from the fleet, gives nothing
    tick(a, ledger)
    assert store.throttled_peers(a.db.conn()) == {a.lightning.channels[0]["peer_id"]}


def test_without_revenue_ops_a_throttled_members_fees_are_restored_then_zeroed_again(make_fleet):
    a, b, c = make_fleet(revenue_version=None)
    ledger = hive_of_three(a, b, c)         # a's channels to b and c carry 1000/10
    for s in (a, b, c):
        s.settle()
    a.tick()
    assert a.lightning.local_fees(TO_B) == (0, 0) and a.lightning.local_fees(TO_C) == (0, 0)
    throttle_b(a, ledger)
    assert a.lightning.local_fees(TO_B) == (1000, 10)            # out of the fleet policy
    assert a.lightning.local_fees(TO_C) == (0, 0)                # c is untouched
    assert bridge_store.fee_policy(a.db.conn(), b.node_id)["wanted"] == "released"
    ledger.offer(settled(TO_B, TO_X, 6_000))                     # 6000/10000: the release mark
    tick(a, ledger)
    assert store.throttled_peers(a.db.conn()) == set()
    assert a.lightning.local_fees(TO_B) == (0, 0)                # back in the fleet policy


def test_with_revenue_ops_a_throttled_member_is_passive_then_hive_again(make_fleet):
    a, b, c = make_fleet()
    ledger = hive_of_three(a, b, c)
    for s in (a, b, c):
        s.settle()
    models = a.lightning.models["cl-revenue-ops"]
    assert models.policies[b.node_id]["strategy"] == "hive"
    throttle_b(a, ledger)
    assert models.policies[b.node_id]["strategy"] == "passive"
    assert models.policies[c.node_id]["strategy"] == "hive"
    ledger.offer(settled(TO_B, TO_X, 6_000))
    tick(a, ledger)
    assert models.policies[b.node_id]["strategy"] == "hive"


def test_a_restart_or_a_readmission_does_not_re_zero_a_throttled_member(make_fleet, clock):
    a, b, c = make_fleet()
    ledger = hive_of_three(a, b, c)
    for s in (a, b, c):
        s.settle()
    throttle_b(a, ledger)
    a.new_bridge()                         # a restart: the new bridge's first sweep
    a.bridge.start(a.ctx)
    a.settle()
    clock.advance(30)
    a.tick()
    policies = a.lightning.models["cl-revenue-ops"].policies
    assert policies[b.node_id]["strategy"] == "passive" and policies[c.node_id]["strategy"] == "hive"
    assert bridge_store.fee_policy(a.db.conn(), b.node_id)["wanted"] == "released"
    fees.admit_member(a.ctx, b.node_id)    # what a readmission after a ban calls
    a.settle()
    assert policies[b.node_id]["strategy"] == "passive"
