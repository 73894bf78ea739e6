"""The value-add score (seed: Reliability + Contribution + Topology), a pure function of
what this node has seen, from 0 to 1, with documented weights:

- reliability (0.4): how fresh the member's HiveMap state is. A state at most two
  heartbeat intervals old is a member heard on time (1.0); it falls linearly to 0 at ten
  intervals; no state at all is 0. (The HiveMap keeps each member's latest signed state,
  so its age stands for the heartbeats seen.)
- contribution (0.3): the ledger's forwarded/received ratio, capped at 1; an undefined
  ratio (too little volume to judge) is 0.5, neither credit nor blame.
- topology (0.3): external peers the member reaches that no other member does, one
  fifth per peer, capped at 1 (five such peers is full marks).
"""
from __future__ import annotations

WEIGHTS = {"reliability": 0.4, "contribution": 0.3, "topology": 0.3}
ON_TIME_BEATS, SILENT_BEATS = 2, 10
UNDEFINED_CONTRIBUTION = 0.5
UNIQUE_PEERS_FOR_FULL_MARKS = 5


def reliability(age_seconds: float | None, heartbeat_seconds: int) -> float:
    if age_seconds is None:
        return 0.0
    beats = max(0.0, age_seconds) / heartbeat_seconds
    if beats <= ON_TIME_BEATS:
        return 1.0
    return max(0.0, (SILENT_BEATS - beats) / (SILENT_BEATS - ON_TIME_BEATS))


def contribution(ratio: float | None) -> float:
    return UNDEFINED_CONTRIBUTION if ratio is None else min(1.0, max(0.0, ratio))


def topology(unique_peers: int) -> float:
    return min(1.0, unique_peers / UNIQUE_PEERS_FOR_FULL_MARKS)


def value_add(*, age_seconds: float | None, heartbeat_seconds: int, ratio: float | None,
              unique_peers: int) -> dict:
    parts = {"reliability": reliability(age_seconds, heartbeat_seconds),
             "contribution": contribution(ratio), "topology": topology(unique_peers)}
    total = sum(WEIGHTS[k] * v for k, v in parts.items())
    return {"score": round(total, 3), **{k: round(v, 3) for k, v in parts.items()}}


def unique_peers(states: list[dict]) -> dict[str, int]:
    """Per member (HiveMap states), its external peers that no other member reaches."""
    members = {s["peer_id"] for s in states}
    reach: dict[str, set[str]] = {}
    for s in states:
        for p in s["peers"]:
            reach.setdefault(p["peer_id"], set()).add(s["peer_id"])
    return {s["peer_id"]: sum(1 for p in s["peers"] if p["peer_id"] not in members
                              and reach[p["peer_id"]] == {s["peer_id"]})
            for s in states}
