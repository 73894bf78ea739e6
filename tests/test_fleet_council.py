"""Membership governance on a fleet of real plugin processes, through the operator's
commands: promotion by vouches, a ban by votes after which the banned node's gossip and
intents are ignored everywhere, leave and rejoin, and a node offline during a promotion
and a ban that catches up after it reconnects. Each runs on the stand-in and on real
lightningd."""
import time

import pytest
from pyln.client import RpcError

from handlers.wire import signing
from handlers.wire.framing import MsgType, encode
from tests.fleet_helpers import form_hive

FAST = {"hive-tick-seconds": 1, "hive-sync-interval": 2, "hive-probation-days": 0}


TARGET = "02" + "11" * 32


def signed_intent(node, hive_id) -> str:
    """A channel_open INTENT signed by `node`'s lightningd, as its plugin would send it."""
    intent = {"intent_id": "ab" * 16, "intent_type": "channel_open", "target": TARGET,
              "initiator": node.id, "created_at": int(time.time()), "amount_sat": 100_000,
              "hold_seconds": 60, "expire_seconds": 600}
    sig = node.rpc.signmessage(signing.signed_string(hive_id, "INTENT", intent))["zbase"]
    return encode(MsgType.INTENT, {"intent": intent, "sig": sig, "commit": None})


def tiers(node):
    return {m["peer_id"]: m["tier"] for m in node.rpc.call("hive-members")["members"]}


def wait_tier(fleet, nodes, target, tier, timeout=30):
    fleet.wait_for(lambda: all(tiers(n).get(target.id) == tier for n in nodes),
                   timeout=timeout, what=f"{len(nodes)} nodes to list the member as {tier}")


def promote(fleet, target, voters, everyone):
    target.rpc.call("hive-request-promotion")
    for v in voters:
        fleet.wait_for(lambda: _open_promotion(v, target), timeout=20,
                       what="the promotion request to reach the voter")
        v.rpc.call("hive-vouch", {"peer_id": target.id})
    wait_tier(fleet, everyone, target, "member")


def _open_promotion(node, target):
    return any(p["kind"] == "promote" and p["target"] == target.id and p["status"] == "open"
               for p in node.rpc.call("hive-proposals")["proposals"])


def test_promotion_by_vouches(fleet):
    a, b, c = form_hive(fleet, fleet.nodes(3, options=FAST))
    promote(fleet, b, [a], [a, b, c])
    # Two voters besides c now: one vouch is short of the quorum of 2.
    c.rpc.call("hive-request-promotion")
    fleet.wait_for(lambda: _open_promotion(a, c) and _open_promotion(b, c), timeout=20,
                   what="c's request to reach a and b")
    assert a.rpc.call("hive-vouch", {"peer_id": c.id})["decided"] is False
    fleet.wait_for(lambda: any(a.id in p["yes"] for p in b.rpc.call("hive-proposals")["proposals"]
                               if p["target"] == c.id), timeout=20,
                   what="a's vouch to reach b")
    assert b.rpc.call("hive-vouch", {"peer_id": c.id})["decided"] is True
    wait_tier(fleet, [a, b, c], c, "member")
    proposals = c.rpc.call("hive-proposals")["proposals"]
    assert sorted((p["status"], p["quorum"], p["eligible"]) for p in proposals) == \
        [("decided", 1, 1), ("decided", 2, 2)]


def test_a_ban_by_votes_is_final_everywhere_and_the_banned_node_is_ignored(fleet):
    nodes = form_hive(fleet, fleet.nodes(4, options=FAST))
    a, b, c, d = nodes
    promote(fleet, b, [a], nodes)
    promote(fleet, c, [a, b], nodes)
    fleet.wait_for(lambda: d.id in {m["peer_id"] for m in a.rpc.call("hive-topology")["members"]},
                   timeout=30, what="d's HiveMap state to reach a")
    opened = a.rpc.call("hive-ban", {"peer_id": d.id, "reason": "probing"})
    assert opened["decided"] is False
    # The proposal and a's yes vote travel as two messages: c's vote decides once it
    # holds both.
    fleet.wait_for(lambda: any(p["proposal_id"] == opened["proposal_id"] and a.id in p["yes"]
                               for p in c.rpc.call("hive-proposals")["proposals"]),
                   timeout=20, what="the ban proposal and a's vote to reach c")
    assert c.rpc.call("hive-vote", {"proposal_id": opened["proposal_id"],
                                    "choice": "yes"})["decided"] is True
    wait_tier(fleet, [a, b, c], d, "banned")
    for n in (a, b, c):
        assert d.id not in {m["peer_id"] for m in n.rpc.call("hive-topology")["members"]}
    # d counts itself banned too (the votes reached it) and announces nothing; an intent
    # it signs and sends all the same is refused by every member, which holds no lock.
    with pytest.raises(RpcError, match="only an active member may announce intents"):
        d.rpc.call("hive-intent", {"type": "channel_open", "target": TARGET,
                                   "amount_sat": 100_000})
    msg = signed_intent(d, a.rpc.call("hive-status")["hive"]["hive_id"])
    for n in (a, b, c):
        d.rpc.sendcustommsg(n.id, msg)
    for n in (a, b, c):
        n.wait_for_log(r"intent\.refused.*sender is banned|sender is banned.*intent\.refused",
                       timeout=20)
        assert not [i for i in n.rpc.call("hive-intents")["intents"]
                    if i["lock_id"].startswith(d.id)]


def test_leave_and_rejoin(fleet):
    nodes = form_hive(fleet, fleet.nodes(3, options=FAST))
    a, b, c = nodes
    assert c.rpc.call("hive-leave")["tier"] == "left"
    wait_tier(fleet, nodes, c, "left")
    ticket = a.rpc.call("hive-invite", {})["ticket"]
    result = c.rpc.call("hive-join", {"ticket": ticket})
    assert result["state"] == "joined" and result["tier"] == "neophyte"
    wait_tier(fleet, nodes, c, "neophyte")


def test_a_node_offline_during_a_promotion_and_a_ban_catches_up(fleet):
    nodes = form_hive(fleet, fleet.nodes(5, options=FAST))
    a, b, c, d, e = nodes
    promote(fleet, b, [a], nodes)
    d.stop()
    online = [a, b, c, e]
    promote(fleet, c, [a, b], online)
    opened = a.rpc.call("hive-ban", {"peer_id": e.id, "reason": "spam"})
    fleet.wait_for(lambda: any(p["proposal_id"] == opened["proposal_id"]
                               for p in b.rpc.call("hive-proposals")["proposals"]),
                   timeout=20, what="the ban proposal to reach b")
    b.rpc.call("hive-vote", {"proposal_id": opened["proposal_id"], "choice": "yes"})
    wait_tier(fleet, [a, b, c], e, "banned")
    d.start()
    for n in (a, b, c):
        fleet.connect(d, n)
    wait_tier(fleet, [d], c, "member", timeout=45)
    wait_tier(fleet, [d], e, "banned", timeout=45)
    assert tiers(d) == tiers(a)
    fleet.wait_for(lambda: len({n.rpc.call("hive-status")["membership"]["hash"]
                                for n in (a, b, c, d)}) == 1, timeout=30,
                   what="the membership hashes to agree")
