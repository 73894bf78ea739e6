"""Governance's `ban` kind: a ban cl-hive (or the operator) proposes as an action waits for
the governance mode like any other; executing it opens the ban proposal with our yes vote,
and the members' votes decide the ban (handlers/council)."""
import pytest

from council_sides import hive, promote, tiers
from handlers.council import proposals
from handlers.governance import actions
from hive_sides import pump


@pytest.fixture
def council(tmp_path, clock):
    """a admin, b and c promoted members, d a neophyte (advisor mode, the default)."""
    sides = hive(tmp_path, clock, "a", "b", "c", "d")
    a, b, c, d = sides
    promote(b, [a], sides)
    promote(c, [a, b], sides)
    yield sides
    for s in sides:
        s.close()


def test_an_approved_ban_action_opens_the_proposal_and_the_votes_decide(council):
    a, b, c, d = council
    action = actions.propose(a.ctx, "ban", d.node_id, reason="probing our channels",
                             origin="rule")
    assert action["state"] == "awaiting_approval"
    pump(*council)
    assert proposals.ban_proposed(b.ctx, d.node_id) is False     # nothing before approval
    done = actions.approve(a.ctx, action["id"])
    assert done["state"] == "executed"
    pump(*council)
    assert proposals.ban_proposed(b.ctx, d.node_id) is True
    assert all(t[d.node_id] == "neophyte" for t in tiers(*council))   # 1 vote of 3
    pid = next(p["proposal_id"] for p in proposals.store.proposals_for(
        b.db.conn(), d.node_id, "ban"))
    assert proposals.vote(b.ctx, pid, "yes")["decided"] is True
    pump(*council)
    assert all(t[d.node_id] == "banned" for t in tiers(*council))


def test_a_ban_action_on_the_admin_fails_with_the_reason_and_opens_nothing(council):
    a, b, c, d = council
    action = actions.propose(b.ctx, "ban", a.node_id, reason="x", origin="operator")
    out = actions.approve(b.ctx, action["id"])
    assert out["state"] == "failed"
    assert "admin" in out["failure"] and out["failure"].startswith("ban proposal not opened")
    pump(*council)
    assert not any(proposals.ban_proposed(s.ctx, a.node_id) for s in council)


def test_a_ban_action_takes_no_amount(council):
    a, b, c, d = council
    with pytest.raises(proposals.RpcException, match="amount_sat: not used by ban"):
        actions.propose(a.ctx, "ban", d.node_id, 5, origin="operator")
