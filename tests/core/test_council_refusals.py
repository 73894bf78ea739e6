"""Every bad input the membership issue lists, sent through the real router to a Side:
each is refused with its reason and changes nothing (members, machines, outbox)."""
import pytest
from structlog.testing import capture_logs

from council_sides import hive, promote
from handlers.council import leave, proposals, records
from handlers.wire import signing
from handlers.wire.framing import MsgType, encode
from hive_sides import pump
from storage import council as store
from storage import hive as hive_store
from tests.standin.keys import NodeKey

pytestmark = pytest.mark.usefixtures("every_refusal_logged")


@pytest.fixture
def five(tmp_path, clock):
    """a admin, b and c members, d and e neophytes; d has asked for promotion."""
    sides = hive(tmp_path, clock, "a", "b", "c", "d", "e")
    a, b, c, d, e = sides
    promote(b, [a], sides)
    promote(c, [a, b], sides)
    proposals.request_promotion(d.ctx)
    pump(*sides)
    yield sides
    for s in sides:
        s.close()


def hive_id(side) -> str:
    return hive_store.get_meta(side.db.conn())["hive_id"]


def signed_by(key, hid: str, kind: str, fields: dict) -> dict:
    return {**fields, "sig": key.sign_message(signing.signed_string(hid, kind, fields))["zbase"]}


def key(side):
    return side.lightning.key


def open_request(side, target):
    """The open proposal about `target` that `side` holds (record, id)."""
    rows = [p for p in store.proposals(side.db.conn()) if p["target"] == target.node_id
            and p["decided_at"] is None]
    return rows[-1]["record"], rows[-1]["proposal_id"]


def vote(signer, hid, pid, voter=None, choice="yes", at=1_700_000_000):
    fields = {"proposal_id": pid, "voter": (voter or signer).node_id, "choice": choice,
              "voted_at": at}
    return signed_by(key(signer), hid, "VOTE", fields)


def refused(receiver, sender, msg_type, body) -> list[str]:
    """Deliver one message; the refusal reasons logged. Asserts nothing changed."""
    before = receiver.snapshot()
    with capture_logs() as logs:
        receiver.receive(sender, encode(msg_type, body))
    assert receiver.snapshot() == before
    return [e["reason"] for e in logs if e["event"].endswith(".refused")]


def test_a_forged_vouch_is_refused(five):
    a, b, c, d, e = five
    proposal, pid = open_request(a, d)
    forged = vote(b, hive_id(a), pid, voter=c)       # c's vouch, signed by b
    assert refused(a, b, MsgType.VOTE, {"proposal": proposal, "vote": forged}) == \
        ["not signed by its voter"]
    assert store.vote_of(a.db.conn(), pid, c.node_id) is None


def test_a_vouch_by_a_neophyte_is_refused(five):
    a, b, c, d, e = five
    proposal, pid = open_request(a, d)
    assert refused(a, e, MsgType.VOTE, {"proposal": proposal, "vote": vote(e, hive_id(a), pid)}) \
        == ["voter may not vote on this proposal (neophyte)"]


def test_a_vouch_by_a_banned_member_is_refused(five):
    a, b, c, d, e = five
    ban = proposals.open_ban_proposal(a.ctx, e.node_id, "spam")
    pump(*five)
    proposals.vote(b.ctx, ban["proposal_id"], "yes")
    pump(*five)
    proposal, pid = open_request(a, d)
    assert refused(a, e, MsgType.VOTE, {"proposal": proposal, "vote": vote(e, hive_id(a), pid)}) \
        == ["sender is banned"]
    # Relayed by a member inside a decision, it does not count either.
    decision = {"proposal": proposal, "votes": [vote(a, hive_id(a), pid), vote(e, hive_id(a), pid)]}
    assert refused(c, b, MsgType.DECISION, {"decision": decision}) == \
        ["1 counted yes votes, short of the quorum of 2"]


def test_a_vouch_by_a_departed_member_is_refused(five):
    a, b, c, d, e = five
    proposal, pid = open_request(a, d)
    c_vote = vote(c, hive_id(a), pid)
    leave.leave(c.ctx)
    pump(*five)
    assert a.members()[c.node_id] == "left"
    assert refused(a, c, MsgType.VOTE, {"proposal": proposal, "vote": c_vote}) == \
        ["sender is not a member"]
    assert refused(a, b, MsgType.VOTE, {"proposal": proposal, "vote": c_vote}) == \
        ["voter may not vote on this proposal (left)"]


def test_duplicate_vouches_from_one_member_count_once(five):
    a, b, c, d, e = five
    proposal, pid = open_request(a, d)
    a_vote = vote(a, hive_id(a), pid)
    decision = {"proposal": proposal, "votes": [a_vote, a_vote]}
    assert refused(c, b, MsgType.DECISION, {"decision": decision}) == ["a voter is listed twice"]
    msg = {"proposal": proposal, "vote": a_vote}
    c.receive(a, encode(MsgType.VOTE, msg))
    assert refused(c, a, MsgType.VOTE, msg) == ["not newer than the vote held from this voter"]
    assert c.members()[d.node_id] == "neophyte"       # one vouch of the two needed


def test_an_old_vote_replayed_into_a_new_proposal_is_refused(five):
    a, b, c, d, e = five
    old_proposal, old_pid = open_request(a, d)
    ban = proposals.open_ban_proposal(b.ctx, e.node_id, "")
    pump(*five)
    new_proposal = store.proposal(a.db.conn(), ban["proposal_id"])["record"]
    old_vote = vote(c, hive_id(a), old_pid)
    assert refused(a, c, MsgType.VOTE, {"proposal": new_proposal, "vote": old_vote}) == \
        ["vote is for another proposal"]
    decision = {"proposal": new_proposal, "votes": [vote(b, hive_id(a), ban["proposal_id"]),
                                                    old_vote]}
    assert refused(a, c, MsgType.DECISION, {"decision": decision}) == \
        [f"vote of {c.node_id}: vote is for another proposal"]
    assert a.members()[e.node_id] == "neophyte"


def test_a_ban_record_missing_votes_is_refused(five):
    a, b, c, d, e = five
    ban = proposals.open_ban_proposal(b.ctx, e.node_id, "")    # only b's vote
    record = store.proposal(b.db.conn(), ban["proposal_id"])["record"]
    decision = {"proposal": record, "votes": store.votes(b.db.conn(), ban["proposal_id"])}
    b.outgoing(a)                                             # a never saw the proposal
    assert refused(a, b, MsgType.DECISION, {"decision": decision}) == \
        ["1 counted yes votes, short of the quorum of 2"]
    assert a.members()[e.node_id] == "neophyte"


def test_a_ban_record_with_votes_of_non_members_is_refused(five):
    a, b, c, d, e = five
    ban = proposals.open_ban_proposal(b.ctx, e.node_id, "")
    record = store.proposal(b.db.conn(), ban["proposal_id"])["record"]
    stranger = NodeKey.from_seed("stranger")
    outsider = signed_by(stranger, hive_id(a), "VOTE", {
        "proposal_id": ban["proposal_id"], "voter": stranger.node_id, "choice": "yes",
        "voted_at": 1_700_000_000})
    decision = {"proposal": record,
                "votes": store.votes(b.db.conn(), ban["proposal_id"]) + [outsider]}
    assert refused(a, b, MsgType.DECISION, {"decision": decision}) == \
        ["carries a vote of a node that is not a member"]


def test_a_leave_signed_by_someone_else_is_refused(five):
    a, b, c, d, e = five
    row = hive_store.member(a.db.conn(), d.node_id)
    fields = {"hive_id": hive_id(a), "member": d.node_id,
              "subject": records.admission_ref(row["admission"]), "left_at": 1_700_000_000}
    forged = signed_by(key(b), hive_id(a), "LEAVE", fields)
    assert refused(a, b, MsgType.LEAVE, {"leave": forged}) == \
        ["not signed by the member that leaves"]
    assert a.members()[d.node_id] == "neophyte"


def test_a_promotion_record_for_a_node_that_is_not_a_neophyte_is_refused(five):
    a, b, c, d, e = five
    row = hive_store.member(a.db.conn(), b.node_id)
    hid = hive_id(a)
    fields = {"hive_id": hid, "kind": "promote", "target": b.node_id, "proposer": b.node_id,
              "subject": records.admission_ref(row["admission"]), "reason": "",
              "created_at": 1_700_000_000, "expires_at": 1_700_003_600}
    proposal = signed_by(key(b), hid, "PROPOSAL", fields)
    pid = records.proposal_id(hid, fields)
    decision = {"proposal": proposal, "votes": [vote(a, hid, pid), vote(c, hid, pid)]}
    assert refused(a, b, MsgType.DECISION, {"decision": decision}) == \
        ["proposal: target is not a neophyte (member)"]


def test_an_older_copy_of_a_vote_does_not_downgrade_the_newer(five):
    a, b, c, d, e = five
    ban = proposals.open_ban_proposal(b.ctx, e.node_id, "")
    pump(*five)
    record = store.proposal(a.db.conn(), ban["proposal_id"])["record"]
    first = vote(c, hive_id(a), ban["proposal_id"], choice="no", at=1_700_000_000)
    second = vote(c, hive_id(a), ban["proposal_id"], choice="yes", at=1_700_000_010)
    a.receive(c, encode(MsgType.VOTE, {"proposal": record, "vote": second}))
    assert a.members()[e.node_id] == "banned"          # b's and c's yes: the quorum of 2
    assert refused(a, c, MsgType.VOTE, {"proposal": record, "vote": first}) == []
    assert store.vote_of(a.db.conn(), ban["proposal_id"], c.node_id)["choice"] == "yes"


def test_a_newer_no_replaces_a_yes_but_an_older_yes_cannot_come_back(five):
    a, b, c, d, e = five
    ban = proposals.open_ban_proposal(b.ctx, e.node_id, "")
    pump(*five)
    record = store.proposal(a.db.conn(), ban["proposal_id"])["record"]
    old_yes = vote(c, hive_id(a), ban["proposal_id"], choice="yes", at=1_699_999_000)
    new_no = vote(c, hive_id(a), ban["proposal_id"], choice="no", at=1_700_000_000)
    # The no arrives first; the older yes must not turn it round.
    a.receive(c, encode(MsgType.VOTE, {"proposal": record, "vote": new_no}))
    assert refused(a, c, MsgType.VOTE, {"proposal": record, "vote": old_yes}) == \
        ["not newer than the vote held from this voter"]
    assert store.vote_of(a.db.conn(), ban["proposal_id"], c.node_id)["choice"] == "no"
    assert a.members()[e.node_id] == "neophyte"


def test_a_ban_proposal_on_the_admin_is_refused(five):
    a, b, c, d, e = five
    row = hive_store.member(c.db.conn(), a.node_id)
    hid = hive_id(c)
    fields = {"hive_id": hid, "kind": "ban", "target": a.node_id, "proposer": b.node_id,
              "subject": records.admission_ref(row["admission"]), "reason": "coup",
              "created_at": 1_700_000_000, "expires_at": 1_700_003_600}
    assert refused(c, b, MsgType.PROPOSAL,
                   {"proposal": signed_by(key(b), hid, "PROPOSAL", fields)}) == \
        ["the admin cannot be banned"]


def test_a_member_cannot_make_us_hold_more_than_ten_open_proposals(five):
    a, b, c, d, e = five
    hid = hive_id(a)
    row = hive_store.member(a.db.conn(), e.node_id)
    sent = []
    for i in range(records.MAX_OPEN_PER_PROPOSER + 1):
        fields = {"hive_id": hid, "kind": "ban", "target": e.node_id, "proposer": b.node_id,
                  "subject": records.admission_ref(row["admission"]), "reason": str(i),
                  "created_at": 1_700_000_000, "expires_at": 1_700_003_600}
        sent.append({"proposal": signed_by(key(b), hid, "PROPOSAL", fields)})
    for body in sent[:-1]:
        a.receive(b, encode(MsgType.PROPOSAL, body))
    assert refused(a, b, MsgType.PROPOSAL, sent[-1]) == \
        ["the proposer has 10 open proposals already"]


def test_lapsed_proposals_are_pruned_after_the_retention(five, clock):
    from handlers.council import sync as council_sync
    a, b, c, d, e = five
    ban = proposals.open_ban_proposal(b.ctx, e.node_id, "")
    pump(*five)
    assert store.proposal(a.db.conn(), ban["proposal_id"]) is not None
    clock.advance(a.config.proposal_expire_hours * 3600 + a.config.log_retention_seconds + 1)
    council_sync.on_tick(a.ctx)
    assert store.proposal(a.db.conn(), ban["proposal_id"]) is None
    assert store.votes(a.db.conn(), ban["proposal_id"]) == []
    assert all(p["decided_at"] is not None for p in store.proposals(a.db.conn()))
