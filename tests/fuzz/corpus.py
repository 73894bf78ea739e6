"""Valid traffic of every hive message type, recorded from a real run of the handlers
(three whole nodes on real SQLite and secp256k1, as in tests/core/hive_sides): the seeds
the fuzzer mutates and replays."""
from __future__ import annotations

from dataclasses import dataclass

from handlers.council import leave
from handlers.council import proposals
from handlers.council import sync as council_sync
from handlers.hivemap import gossip
from handlers.intents import locks as intents
from handlers.membership import handshake
from handlers.membership import members as membership
from handlers.wire.framing import MsgType, peek
from tests.core.hive_sides import Side, pump

TARGET = "03" + "5a" * 32
OTHER_TARGET = "02" + "6b" * 32


@dataclass(frozen=True)
class Seed:
    sender: str          # node id
    receiver: str        # node id
    kind: MsgType
    msg_hex: str


def record_traffic(tmp_path, clock) -> tuple[list[Side], list[Seed]]:
    """Form a hive of three, gossip, sync, and race intents; every message each side sent
    is recorded, in order, and delivered."""
    a, b, c = sides = [Side(n, tmp_path, clock, **{"hive-probation-days": 0})
                       for n in ("a", "b", "c")]
    seeds: list[Seed] = []

    def seen(src, dst, msg):
        seeds.append(Seed(src.node_id, dst.node_id, MsgType(peek(msg)), msg))

    membership.genesis(a.ctx, "fleet")
    used = None
    for joiner in (b, c):
        ticket = used = membership.invite(a.ctx, None, None, None)["ticket"]
        handshake.start_join(joiner.ctx, ticket, None)
        pump(*sides, observe=seen)
    for s in sides:
        s.lightning.connected = {o.node_id for o in sides if o is not s}
    pump(*sides, observe=seen)
    # HiveMap: states, then a side that missed one learns it through hash, digest, sync.
    b.lightning.channels = [{"peer_id": TARGET, "state": "CHANNELD_NORMAL",
                             "total_msat": 5_000_000_000, "to_us_msat": 2_000_000_000,
                             "short_channel_id": "1x1x1", "channel_id": "00" * 32}]
    for s in sides:
        gossip.on_tick(s.ctx)
    b.outgoing(c)                                   # c misses b's state
    pump(*sides, observe=seen)
    clock.advance(a.config.sync_interval + 1)
    gossip.on_member_connected(c.ctx, b.node_id)
    gossip.on_member_connected(b.ctx, c.node_id)
    pump(*sides, observe=seen)
    # Intents: a channel open (acknowledged), and a race the higher key loses (abort).
    intents.announce(b.ctx, "channel_open", TARGET, 100_000)
    pump(*sides, observe=seen)
    low, high = sorted((a, c), key=lambda s: s.node_id)
    intents.announce(high.ctx, "channel_open", OTHER_TARGET, 100_000)
    intents.announce(low.ctx, "channel_open", OTHER_TARGET, 100_000)
    pump(*sides, observe=seen)
    # Membership governance: b asks to be promoted and the admin's vouch decides it (VOTE,
    # DECISION); c misses both and catches up by MEMBERSHIP_HASH and MEMBERSHIP_SYNC; then
    # a fourth node is refused a used ticket (JOIN_REFUSED), joins and leaves (LEAVE), so a,
    # b and c stay members for the fuzzer.
    proposals.request_promotion(b.ctx)
    pump(*sides, observe=seen)
    a.outgoing(c)
    b.outgoing(c)                                   # c misses the vouch and the decision
    proposals.vouch(a.ctx, b.node_id)
    a.outgoing(c)
    b.outgoing(c)
    pump(*sides, observe=seen)
    clock.advance(a.config.sync_interval + 1)
    for s in sides:
        council_sync.on_tick(s.ctx)
    pump(*sides, observe=seen)
    d = Side("d", tmp_path, clock, **{"hive-probation-days": 0})
    handshake.start_join(d.ctx, used, None)         # c's ticket: refused (JOIN_REFUSED)
    pump(a, d, observe=seen)
    handshake.start_join(d.ctx, membership.invite(a.ctx, None, None, None)["ticket"], None)
    pump(*sides, d, observe=seen)
    sides.append(d)
    for s in sides:
        s.lightning.connected = {o.node_id for o in sides if o is not s}
    pump(*sides, observe=seen)
    leave.leave(d.ctx)
    pump(*sides, observe=seen)
    return sides, seeds
