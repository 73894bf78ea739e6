"""Membership anti-entropy between Sides: a node that missed MEMBER_ADDED, a promotion or a
ban catches up by proofs after it reconnects; every node ends with the same tiers and the
same membership hash; votes during a partition decide only with a majority of all voters."""
import pytest
from pyln.client import RpcException

from council_sides import disconnect, hive, promote, reconnect
from handlers.council import proposals
from handlers.council import sync as council_sync
from handlers.membership import handshake
from handlers.membership import members as membership
from hive_sides import Side, form_hive, pump


def sync_round(clock, sides) -> None:
    """One sync interval: every side ticks (its MEMBERSHIP_HASH), then messages flow."""
    clock.advance(sides[0].config.sync_interval)
    for s in sides:
        council_sync.on_tick(s.ctx)
    pump(*sides, rounds=50)


def hashes(sides) -> set[str]:
    return {council_sync.membership_hash(s.ctx)[0] for s in sides}


@pytest.fixture
def five(tmp_path, clock):
    sides = hive(tmp_path, clock, "a", "b", "c", "d", "e")
    yield sides
    for s in sides:
        s.close()


def test_a_node_offline_during_a_promotion_and_a_ban_catches_up(five, clock):
    a, b, c, d, e = five
    promote(b, [a], five)
    promote(c, [a, b], five)
    disconnect(e, five)
    online = [a, b, c, d]
    promote(d, [a, b], online)
    ban = proposals.open_ban_proposal(a.ctx, c.node_id, "misbehaved")
    pump(*online)
    proposals.vote(b.ctx, ban["proposal_id"], "yes")
    pump(*online)
    assert a.members()[d.node_id] == "member" and a.members()[c.node_id] == "banned"
    assert e.members()[d.node_id] == "neophyte" and e.members()[c.node_id] == "member"
    assert len(hashes(five)) == 2
    reconnect(e, five)
    sync_round(clock, five)
    assert all(s.members() == a.members() for s in (b, d, e))
    assert len(hashes([a, b, d, e])) == 1
    # e checked every vote itself: the ban's votes are stored with the decision.
    assert e.members()[c.node_id] == "banned"


def test_a_node_that_missed_member_added_learns_the_member(tmp_path, clock):
    a, b = Side("a", tmp_path, clock), Side("b", tmp_path, clock)
    form_hive(a, b)
    c = Side("c", tmp_path, clock)
    everyone = [a, b, c]
    disconnect(b, [a, b])
    ticket = membership.invite(a.ctx, None, None, None)["ticket"]
    handshake.start_join(c.ctx, ticket, None)
    pump(a, c)
    assert c.node_id in a.members() and c.node_id not in b.members()
    reconnect(b, everyone)
    c.lightning.connected = {a.node_id, b.node_id}
    sync_round(clock, everyone)
    assert b.members() == a.members() == c.members()
    assert len(hashes(everyone)) == 1
    for s in everyone:
        s.close()


def test_synced_nodes_are_quiet_once_in_step(five, clock):
    a, b, c, d, e = five
    promote(b, [a], five)
    sync_round(clock, five)
    sent = []
    clock.advance(a.config.sync_interval)
    for s in five:
        council_sync.on_tick(s.ctx)
    pump(*five, observe=lambda x, y, m: sent.append(m[:4]))
    # Only the periodic hashes: nobody had anything to send.
    assert sent and set(sent) == {"%04x" % 32799}


def test_votes_during_a_partition_decide_only_with_a_majority_of_all_voters(five, clock):
    a, b, c, d, e = five
    promote(b, [a], five)
    promote(c, [a, b], five)
    promote(d, [a, b], five)
    # Voters on a ban of e: a, b, c, d; the quorum is 3 of 4.
    minority, majority = [a, b], [c, d, e]
    for s in majority:
        disconnect(s, five)
    for s in minority:
        s.lightning.connected = {x.node_id for x in minority if x is not s}
    ban = proposals.open_ban_proposal(a.ctx, e.node_id, "")
    pump(*minority)
    assert proposals.vote(b.ctx, ban["proposal_id"], "yes")["decided"] is False
    pump(*minority)
    assert a.members()[e.node_id] == b.members()[e.node_id] == "neophyte"
    with pytest.raises(RpcException, match="proposal_id: no such proposal"):
        proposals.vote(c.ctx, ban["proposal_id"], "yes")
    # The partition heals: the open proposal and its two votes reach the others.
    for s in five:
        reconnect(s, five)
    sync_round(clock, five)
    assert c.members()[e.node_id] == "neophyte"
    assert proposals.vote(c.ctx, ban["proposal_id"], "yes")["decided"] is True
    pump(*five)
    assert all(s.members()[e.node_id] == "banned" for s in (a, b, c, d))


def test_a_catching_up_node_counts_each_decision_against_the_voters_of_its_time(
        tmp_path, clock):
    sides = hive(tmp_path, clock, "a", "b", "c", "d", "e", "f")
    a, b, c, d, e, f = sides
    promote(b, [a], sides)
    promote(c, [a, b], sides)
    disconnect(e, sides)
    online = [a, b, c, d, f]
    ban = proposals.open_ban_proposal(a.ctx, d.node_id, "")    # voters a, b, c: quorum 2
    pump(*online)
    proposals.vote(b.ctx, ban["proposal_id"], "yes")
    pump(*online)
    clock.advance(60)
    promote(f, [a, b], online)          # afterwards: four voters, a ban would need 3
    reconnect(e, sides)
    sync_round(clock, sides)
    assert e.members()[d.node_id] == "banned" and e.members()[f.node_id] == "member"
    assert e.members() == a.members()
    for s in sides:
        s.close()


def test_a_node_that_missed_a_ban_and_its_unban_logs_both(five, clock):
    a, b, c, d, e = five
    promote(b, [a], five)
    promote(c, [a, b], five)
    disconnect(e, five)
    online = [a, b, c, d]
    ban = proposals.open_ban_proposal(a.ctx, d.node_id, "")
    pump(*online)
    proposals.vote(b.ctx, ban["proposal_id"], "yes")
    pump(*online)
    clock.advance(60)
    unban = proposals.unban(a.ctx, d.node_id, "")
    pump(*online)
    proposals.vote(c.ctx, unban["proposal_id"], "yes")
    pump(*online)
    reconnect(e, five)
    sync_round(clock, five)
    assert e.members()[d.node_id] == "left"
    rows = e.db.conn().execute(
        "SELECT trigger FROM transition_log WHERE kind = 'member_tier' AND instance_id = ? "
        "ORDER BY seq", (d.node_id,)).fetchall()
    assert [r[0] for r in rows] == ["create", "ban", "unban"]
