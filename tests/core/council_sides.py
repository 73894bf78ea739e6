"""For council tests: a hive of Sides (real SQLite, real signatures) with probation off,
and the steps that promote or ban through the operator's commands."""
from __future__ import annotations

from handlers.council import proposals
from hive_sides import Side, form_hive, pump


def hive(tmp_path, clock, *names, **options) -> list[Side]:
    """Genesis on the first, every other joins as a neophyte; all connected."""
    sides = [Side(n, tmp_path, clock, **{"hive-probation-days": 0, **options}) for n in names]
    form_hive(*sides)
    return sides


def promote(target: Side, voters: list[Side], everyone: list[Side]) -> str:
    pid = proposals.request_promotion(target.ctx)["proposal_id"]
    pump(*everyone)
    for v in voters:
        proposals.vouch(v.ctx, target.node_id)
        pump(*everyone)
    return pid


def ban(target: Side, proposer: Side, voters: list[Side], everyone: list[Side],
        reason: str = "spam") -> str:
    """`proposer` opens a ban of `target` (its own yes vote), each of `voters` votes yes."""
    pid = proposals.open_ban_proposal(proposer.ctx, target.node_id, reason)["proposal_id"]
    pump(*everyone)
    for v in voters:
        proposals.vote(v.ctx, pid, "yes")
        pump(*everyone)
    return pid


def tiers(*sides: Side) -> list[dict]:
    return [s.members() for s in sides]


def disconnect(side: Side, everyone: list[Side]) -> None:
    """`side` goes offline: nobody sends to it, it sends to nobody."""
    side.lightning.connected = set()
    for s in everyone:
        s.lightning.connected.discard(side.node_id)


def reconnect(side: Side, everyone: list[Side]) -> None:
    side.lightning.connected = {s.node_id for s in everyone if s is not side}
    for s in everyone:
        if s is not side:
            s.lightning.connected.add(side.node_id)
