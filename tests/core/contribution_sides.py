"""For contribution-ledger tests: a three-member hive (a, b, c) on real SQLite where `a`
has a channel to each other member and to two outsiders, a ledger fed like pyln feeds
forward_event, and the tick's contribution step run by hand on the manual clock."""
from __future__ import annotations

from handlers.contribution import flow
from handlers.contribution.ledger import Ledger
from hive_sides import form_hive

# hive-contribution-min-sat 1: any received volume defines the ratio unless a test says so.
OPTS = {"hive-contribution-min-sat": 1}
TO_B, TO_C, TO_X, TO_Y = "1x1x1", "2x2x2", "3x3x3", "4x4x4"
OUTSIDER_X, OUTSIDER_Y = "02" + "11" * 32, "03" + "22" * 32


def settled(in_channel, out_channel, out_msat, fee=1000, **extra):
    return {"payment_hash": "ab" * 32, "in_channel": in_channel, "out_channel": out_channel,
            "in_msat": out_msat + fee, "out_msat": out_msat, "fee_msat": fee,
            "status": "settled", "received_time": 1.0, "resolved_time": 2.0, **extra}


def wire_channels(a, b, c) -> None:
    for peer, scid in ((b.node_id, TO_B), (c.node_id, TO_C), (OUTSIDER_X, TO_X),
                       (OUTSIDER_Y, TO_Y)):
        a.lightning.add_channel(peer, scid) if hasattr(a.lightning, "add_channel") else \
            a.lightning.channels.append({"peer_id": peer, "short_channel_id": scid,
                                         "state": "CHANNELD_NORMAL"})


def hive_of_three(a, b, c) -> Ledger:
    form_hive(a, b, c)
    wire_channels(a, b, c)
    return Ledger(a.ctx.clock)


def tick(side, ledger) -> None:
    flow.on_tick(side.ctx, ledger)
