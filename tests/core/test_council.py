"""Membership governance between Sides (real SQLite, real secp256k1 signatures, the real
router): the one quorum formula, promotion by vouches, ban and unban by votes and their
effects everywhere, leaving, rights per tier, the value-add score."""
import pytest
from pyln.client import RpcException
from structlog.testing import capture_logs

from council_sides import ban, hive, promote, tiers
from handlers.council import apply, leave, proposals, score, view
from handlers.frame import errors
from handlers.hivemap import gossip
from handlers.intents import acks
from handlers.intents import locks as intents
from handlers.membership import handshake, members, rights
from handlers.wire.framing import MsgType, decode, encode
from hive_sides import pump
from machines.guards import majority_quorum
from storage import hive as hive_store
from storage import hivemap

# n eligible voters -> yes votes needed (the seed's 51%: a strict majority)
QUORUM_TABLE = {1: 1, 2: 2, 3: 2, 4: 3, 5: 3, 6: 4, 7: 4, 8: 5, 9: 5, 10: 6, 11: 6, 12: 7}


@pytest.mark.parametrize("n", sorted(QUORUM_TABLE))
def test_the_one_quorum_formula_is_a_strict_majority(n):
    assert majority_quorum(n) == QUORUM_TABLE[n]
    assert majority_quorum(n) > n / 2 >= majority_quorum(n) - 1


@pytest.fixture
def four(tmp_path, clock):
    sides = hive(tmp_path, clock, "a", "b", "c", "d")
    yield sides
    for s in sides:
        s.close()


@pytest.fixture
def council(four):
    """a admin, b and c promoted members, d a neophyte."""
    a, b, c, d = four
    promote(b, [a], four)
    promote(c, [a, b], four)
    return four


def test_promotion_by_vouches_reaches_every_node(four):
    a, b, c, d = four
    pid = proposals.request_promotion(b.ctx)["proposal_id"]
    pump(*four)
    assert all(t[b.node_id] == "neophyte" for t in tiers(*four))
    result = proposals.vouch(a.ctx, b.node_id)      # one voter (the admin): quorum 1
    assert result == {"proposal_id": pid, "choice": "yes", "decided": True}
    pump(*four)
    assert all(t[b.node_id] == "member" for t in tiers(*four))
    # Now two voters besides c: one vouch is not enough, the second decides.
    proposals.request_promotion(c.ctx)
    pump(*four)
    assert proposals.vouch(a.ctx, c.node_id)["decided"] is False
    pump(*four)
    assert all(t[c.node_id] == "neophyte" for t in tiers(*four))
    assert proposals.vouch(b.ctx, c.node_id)["decided"] is True
    pump(*four)
    assert all(t[c.node_id] == "member" for t in tiers(*four))


def test_a_ban_by_votes_takes_effect_on_every_node(council, clock):
    a, b, c, d = council
    d.lightning.channels = []
    gossip.on_tick(d.ctx)              # d's HiveMap state reaches everyone
    pump(*council)
    assert hivemap.get(a.db.conn(), d.node_id) is not None
    opened = proposals.open_ban_proposal(a.ctx, d.node_id, "probing our channels")
    assert opened["decided"] is False              # 1 of 3 voters; the quorum is 2
    pump(*council)
    assert all(t[d.node_id] == "neophyte" for t in tiers(*council))
    assert proposals.vote(c.ctx, opened["proposal_id"], "yes")["decided"] is True
    pump(*council)
    for s in (a, b, c):
        assert s.members()[d.node_id] == "banned"
        assert hive_store.is_banned(s.db.conn(), d.node_id)
        assert hivemap.get(s.db.conn(), d.node_id) is None
        assert s.ctx.timers.get("status_event") is True       # the ban broadcast fires
    # Its gossip is ignored, and so is anything else it sends.
    clock.advance(600)
    before = a.snapshot()
    gossip.on_tick(d.ctx)
    for msg in d.outgoing(a):
        a.receive(d, msg)
    a.receive(d, encode(MsgType.MEMBERSHIP_HASH, {"hash": "0" * 64, "count": 1}))
    assert a.snapshot() == before
    # The admin refuses its handshake, even with a fresh ticket, and tells it why.
    ticket = members.invite(a.ctx, None, None, None)["ticket"]
    before = a.snapshot()
    with capture_logs() as logs:
        a.receive(d, encode(MsgType.HELLO, {"session": "1" * 32, "ticket": ticket}))
    assert [decode(m)[1]["reason"] for m in a.outgoing(d)] == ["banned"]
    assert a.snapshot() == before
    assert [e["reason"] for e in logs if e["event"] == "handshake.refused"] == ["banned"]


def test_a_banned_members_uncommitted_intent_frees_its_target_everywhere(council):
    a, b, c, d = council
    target = "02" + "77" * 32
    theirs = intents.announce(c.ctx, "channel_open", target, 100_000)
    pump(*council)
    for s in (a, b):      # held here, and our word given to it
        assert acks.promised(s.ctx, "channel_open", target) == theirs["lock_id"]
        with pytest.raises(RpcException) as e:
            intents.announce(s.ctx, "channel_open", target, 100_000)
        assert e.value.code == errors.TARGET_HELD
    ban(c, a, [b], council, "opens behind our backs")
    for s in (a, b, d):
        assert s.members()[c.node_id] == "banned"
        [row] = [i for i in intents.listing(s.ctx)["intents"]
                 if i["lock_id"] == theirs["lock_id"]]
        assert row["state"] == "aborted"
        assert acks.promised(s.ctx, "channel_open", target) is None
    assert intents.announce(a.ctx, "channel_open", target, 100_000)["state"] == "pending"


def test_an_unban_ends_in_left_and_lifts_the_ban_list(council):
    a, b, c, d = council
    ban(d, a, [b], council)
    unban = proposals.unban(b.ctx, d.node_id, "it apologised")
    pump(*council)
    proposals.vote(c.ctx, unban["proposal_id"], "yes")
    pump(*council)
    for s in (a, b, c):
        assert s.members()[d.node_id] == "left"
        assert not hive_store.is_banned(s.db.conn(), d.node_id)


def test_the_admin_cannot_be_banned(council):
    a, b, c, d = council
    with pytest.raises(RpcException, match="peer_id: is the hive's admin"):
        proposals.open_ban_proposal(b.ctx, a.node_id, "coup")


def test_rights_follow_the_tier_table(council):
    a, b, c, d = council
    with pytest.raises(RpcException, match="a neophyte may not propose ban"):
        proposals.open_ban_proposal(d.ctx, c.node_id, "")
    with pytest.raises(RpcException, match="a member may not request promotion"):
        proposals.request_promotion(b.ctx)
    with pytest.raises(RpcException, match="an? admin may not leave"):
        leave.leave(a.ctx)
    assert rights.VOTING_TIERS == ("member", "admin")
    assert [t for t in ("neophyte", "member", "admin", "banned", "left")
            if rights.may(t, "zero_fee_policy")] == ["neophyte", "member", "admin"]


def test_operator_errors_name_the_parameter(council):
    a, b, c, d = council
    with pytest.raises(RpcException, match="peer_id: expected a node id"):
        proposals.vouch(a.ctx, "nope")
    with pytest.raises(RpcException, match="peer_id: has no open promotion request"):
        proposals.vouch(a.ctx, d.node_id)
    with pytest.raises(RpcException, match=r"choice: expected one of yes\|no"):
        proposals.vote(a.ctx, "0" * 64, "maybe")
    with pytest.raises(RpcException, match="proposal_id: no such proposal"):
        proposals.vote(a.ctx, "0" * 64, "yes")
    with pytest.raises(RpcException, match="reason: expected a string"):
        proposals.open_ban_proposal(a.ctx, d.node_id, "x" * 300)


def test_probation_holds_a_promotion_request(tmp_path, clock):
    a, b = hive(tmp_path, clock, "a", "b", **{"hive-probation-days": 2})
    with pytest.raises(RpcException, match="on probation until"):
        proposals.request_promotion(b.ctx)
    clock.advance(2 * 86400)
    assert proposals.request_promotion(b.ctx)["kind"] == "promote"


def test_leave_marks_the_member_left_everywhere(council):
    a, b, c, d = council
    assert leave.leave(d.ctx)["tier"] == "left"
    pump(*council)
    assert all(t[d.node_id] == "left" for t in tiers(*council))
    # Its messages are a stranger's now.
    before = a.snapshot()
    a.receive(d, encode(MsgType.MEMBERSHIP_HASH, {"hash": "0" * 64, "count": 1}))
    assert a.snapshot() == before and not a.outgoing(d)


def test_auto_vouch_vouches_when_the_score_passes(tmp_path, clock):
    a, b = hive(tmp_path, clock, "a", "b", **{"hive-auto-vouch": True,
                                               "hive-auto-vouch-min-score": "0.1"})
    proposals.request_promotion(b.ctx)
    pump(a, b)
    assert a.members()[b.node_id] == b.members()[b.node_id] == "member"


def test_auto_vouch_holds_back_below_the_minimum_score(tmp_path, clock):
    a, b = hive(tmp_path, clock, "a", "b", **{"hive-auto-vouch": True,
                                               "hive-auto-vouch-min-score": "0.9"})
    proposals.request_promotion(b.ctx)
    pump(a, b)
    assert a.members()[b.node_id] == "neophyte"


def test_tiers_follow_from_proofs_whatever_their_order():
    f = apply.tier_from_proofs
    assert f("neophyte", promoted=True, left=False, banned=False, unbanned=False) == "member"
    assert f("member", promoted=True, left=False, banned=False, unbanned=False) == "member"
    assert f("neophyte", promoted=True, left=True, banned=False, unbanned=False) == "left"
    assert f("member", promoted=False, left=True, banned=True, unbanned=False) == "banned"
    assert f("member", promoted=True, left=True, banned=True, unbanned=True) == "left"


def test_value_add_score_weights():
    assert score.value_add(age_seconds=0, heartbeat_seconds=300, ratio=1.0,
                           unique_peers=5)["score"] == 1.0
    assert score.value_add(age_seconds=None, heartbeat_seconds=300, ratio=None,
                           unique_peers=0)["score"] == 0.15          # 0.3 * 0.5
    half = score.value_add(age_seconds=6 * 300, heartbeat_seconds=300, ratio=0.0,
                           unique_peers=0)
    assert half["reliability"] == 0.5 and half["score"] == 0.2
    states = [{"peer_id": "x", "peers": [{"peer_id": "p"}, {"peer_id": "q"}, {"peer_id": "y"}]},
              {"peer_id": "y", "peers": [{"peer_id": "q"}]}]
    assert score.unique_peers(states) == {"x": 1, "y": 0}


def test_hive_members_shows_each_members_score(council):
    a = council[0]
    table = view.scores(a.ctx)
    assert set(table) == set(a.members())
    assert all(0.0 <= s["score"] <= 1.0 for s in table.values())


def test_a_node_that_left_rejoins_with_a_new_ticket(council, clock):
    a, b, c, d = council
    leave.leave(d.ctx)
    pump(*council)
    clock.advance(60)
    ticket = members.invite(a.ctx, None, None, None)["ticket"]
    result = handshake.join_result(d.ctx, handshake.start_join(d.ctx, ticket, None))
    pump(*council)
    assert handshake.join_result(d.ctx, result["session"])["state"] == "joined"
    assert all(t[d.node_id] == "neophyte" for t in tiers(*council))
    # The same row went left -> neophyte: its history is kept in the transition log.
    rows = a.db.conn().execute(
        "SELECT trigger FROM transition_log WHERE kind = 'member_tier' AND instance_id = ? "
        "ORDER BY seq", (d.node_id,)).fetchall()
    assert [r[0] for r in rows] == ["create", "leave", "readmit"]
    # Back on probation, it can be promoted again.
    promote(d, [a, b], council)
    assert all(t[d.node_id] == "member" for t in tiers(*council))
