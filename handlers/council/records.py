"""The proofs that change a member's tier and the checks every node runs on them itself:
a proposal (signed by its proposer), votes (each signed by its voter, bound to the
proposal's id) and a member's LEAVE (signed by that member). Cheap checks come first, the
signature checks (checkmessage) last.

One quorum: `machines.guards.majority_quorum` of the voting members (member and admin
tiers, active) this node knows, the proposal's target excluded. A vote counts only from
such a voter; a minority side of a partition therefore never decides (see
docs/PROTOCOL.md §7)."""
from __future__ import annotations

import hashlib

from handlers.membership import members as ms
from handlers.membership import rights
from handlers.wire import messages, signing
from machines.guards import majority_quorum
from storage import council as store
from storage import hive as hive_store

FUTURE_SKEW = 600                # seconds a signer's clock may run ahead of ours
# Open proposals one proposer may have us hold at once: a member cannot fill our database
# with proposals (lapsed ones are pruned with the transition log).
MAX_OPEN_PER_PROPOSER = 10
MAX_PROPOSAL_SECONDS = 720 * 3600   # the longest hive-proposal-expire-hours allows


def admission_ref(admission: dict) -> str:
    """What names one admission (one stay in the hive): the hash of its signed record."""
    return hashlib.sha256(signing.canonical_json(admission).encode()).hexdigest()


def proposal_id(hive_id: str, fields: dict) -> str:
    """A proposal's id is the hash of the string its proposer signs: a vote for it names
    exactly this hive, kind, target, subject and expiry."""
    return hashlib.sha256(signing.signed_string(hive_id, "PROPOSAL", fields).encode()
                          ).hexdigest()


def voters(conn, target: str) -> set[str]:
    """Who counts in this proposal's quorum: active voting members, the target excluded."""
    return {m["peer_id"] for m in ms.active_members(conn)
            if rights.may(m["tier"], "vote") and m["peer_id"] != target}


def quorum(conn, target: str) -> tuple[int, int]:
    """(votes needed, eligible voters) for a proposal about `target`."""
    eligible = len(voters(conn, target))
    return majority_quorum(eligible), eligible


def proposal_problem(ctx, hive_id: str, signed: dict, *, opening: bool) -> str | None:
    """Why this signed proposal is not one this node accepts, or None. `opening`: it is
    being opened now (PROPOSAL, or a vote on an unknown one), so its proposer must hold
    the right to propose now; a decided proposal is judged by its votes instead."""
    conn = ctx.db.conn()
    fields = messages.unsigned(signed)
    now = ctx.now()
    if fields["hive_id"] != hive_id:
        return "for another hive"
    if not fields["created_at"] < fields["expires_at"] <= \
            fields["created_at"] + MAX_PROPOSAL_SECONDS:
        return "expiry is not within the allowed window after creation"
    if fields["created_at"] > now + FUTURE_SKEW:
        return "created in the future"
    target = hive_store.member(conn, fields["target"])
    if target is None:
        return "target is not a member"
    proposer = hive_store.member(conn, fields["proposer"])
    if proposer is None:
        return "proposer is not a member"
    if opening and store.open_by(conn, fields["proposer"], now) >= MAX_OPEN_PER_PROPOSER:
        return f"the proposer has {MAX_OPEN_PER_PROPOSER} open proposals already"
    kind = fields["kind"]
    if kind == "promote":
        if fields["proposer"] != fields["target"]:
            return "a promotion is requested by the neophyte itself"
        if target["tier"] != "neophyte":
            return f"target is not a neophyte ({target['tier']})"
        if fields["subject"] != admission_ref(target["admission"]):
            return "bound to another admission of the target"
    elif kind == "ban":
        if fields["proposer"] == fields["target"]:
            return "a member cannot propose its own ban"
        if target["tier"] == "admin":
            return "the admin cannot be banned"
        if target["tier"] == "banned":
            return "target is already banned"
        if fields["subject"] != admission_ref(target["admission"]):
            return "bound to another admission of the target"
        if opening and not rights.may(proposer["tier"], "propose_ban"):
            return f"proposer may not propose a ban ({proposer['tier']})"
    else:   # unban
        if target["tier"] != "banned":
            return f"target is not banned ({target['tier']})"
        ban = store.proposal(conn, fields["subject"])
        if ban is None or ban["kind"] != "ban" or ban["target"] != fields["target"] \
                or ban["decided_at"] is None:
            return "subject is not a decided ban of the target"
        if opening and not rights.may(proposer["tier"], "propose_ban"):
            return f"proposer may not propose an unban ({proposer['tier']})"
    if not signing.verify(ctx.lightning, fields["proposer"], hive_id, "PROPOSAL", fields,
                          signed["sig"]):
        return "not signed by its proposer"
    return None


def vote_problem(ctx, hive_id: str, pid: str, proposal: dict, signed: dict,
                 eligible: set[str]) -> str | None:
    """Why this vote does not count for proposal `pid`, or None."""
    fields = messages.unsigned(signed)
    if fields["proposal_id"] != pid:
        return "vote is for another proposal"
    voter = hive_store.member(ctx.db.conn(), fields["voter"])
    if voter is None:
        return "voter is not a member"
    if fields["voter"] not in eligible:
        return f"voter may not vote on this proposal ({voter['tier']})"
    if fields["voted_at"] > proposal["expires_at"]:
        return "cast after the proposal expired"
    if fields["voted_at"] > ctx.now() + FUTURE_SKEW:
        return "cast in the future"
    if not signing.verify(ctx.lightning, fields["voter"], hive_id, "VOTE", fields,
                          signed["sig"]):
        return "not signed by its voter"
    return None


def decision_problem(ctx, hive_id: str, decision: dict) -> tuple[str | None, list, int]:
    """(why this decision is refused or None, the yes votes counted, eligible voters). A
    decision carries at least the quorum of valid yes votes, each voter once, and no vote
    of a node that is not a member at all."""
    conn = ctx.db.conn()
    signed = decision["proposal"]
    fields = messages.unsigned(signed)
    pid = proposal_id(hive_id, fields)
    held = store.proposal(conn, pid)
    if held is None:
        problem = proposal_problem(ctx, hive_id, signed, opening=False)
        if problem:
            return f"proposal: {problem}", [], 0
    votes = decision["votes"]
    if len({v["voter"] for v in votes}) != len(votes):
        return "a voter is listed twice", [], 0
    if any(hive_store.member(conn, v["voter"]) is None for v in votes):
        return "carries a vote of a node that is not a member", [], 0
    eligible = voters(conn, fields["target"])
    needed = majority_quorum(len(eligible))
    yes = [v for v in votes if v["choice"] == "yes" and v["voter"] in eligible]
    if len(yes) < needed:
        return f"{len(yes)} counted yes votes, short of the quorum of {needed}", [], \
            len(eligible)
    for v in yes:
        problem = vote_problem(ctx, hive_id, pid, fields, v, eligible)
        if problem:
            return f"vote of {v['voter']}: {problem}", [], len(eligible)
    return None, yes, len(eligible)


def leave_problem(ctx, hive_id: str, signed: dict) -> str | None:
    fields = messages.unsigned(signed)
    if fields["hive_id"] != hive_id:
        return "for another hive"
    member = hive_store.member(ctx.db.conn(), fields["member"])
    if member is None:
        return "not a member"
    if not rights.may(member["tier"], "leave"):
        return f"a member of tier {member['tier']} cannot leave"
    if fields["subject"] != admission_ref(member["admission"]):
        return "bound to another admission of the member"
    if fields["left_at"] > ctx.now() + FUTURE_SKEW:
        return "dated in the future"
    if not signing.verify(ctx.lightning, fields["member"], hive_id, "LEAVE", fields,
                          signed["sig"]):
        return "not signed by the member that leaves"
    return None
