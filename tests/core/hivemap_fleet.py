"""A large HiveMap without a large fleet: members that exist only as real secp256k1 keys.

Their admissions are signed by the real admin and written to each side's store (the
set-up a run of handshakes would leave); their states are signed with their own keys. What
a receiving side then does with those states goes through the real handlers."""
from __future__ import annotations

import hashlib
import secrets

from handlers.membership import members as membership
from handlers.wire import signing
from handlers.wire.framing import MsgType, encode
from storage import hive as hive_store
from storage import hivemap
from tests.core.hive_sides import KeyOnlyLightning


def external_peer(seed: str) -> str:
    return "02" + hashlib.sha256(f"external:{seed}".encode()).hexdigest()


def admit(admin, sides, count: int, prefix: str = "m") -> list[KeyOnlyLightning]:
    """`count` new members, admitted by `admin` (a Side) on every side in `sides`."""
    hive_id = hive_store.get_meta(admin.db.conn())["hive_id"]
    keys = [KeyOnlyLightning(f"{prefix}{i}") for i in range(count)]
    for key in keys:
        admission = membership.sign_admission(admin.ctx, hive_id, key.node_id, "member",
                                              secrets.token_hex(16))
        for side in sides:
            membership.add_member(side.ctx, admission)
    return keys


def signed_state(key, hive_id: str, *, version: int, timestamp: int, peers: int,
                 salt: int = 0) -> dict:
    """A member's state with `peers` external peers, signed by the member itself."""
    state = {"peer_id": key.node_id, "version": version, "timestamp": timestamp,
             "capacity_sat": 10_000_000 + salt, "available_sat": 1_000_000,
             "fee_policy": {"base_msat": 1000, "ppm": 100},
             "peers": sorted(({"peer_id": external_peer(f"{key.node_id}:{j}"),
                               "capacity_sat": 1_000_000 + j} for j in range(peers)),
                             key=lambda p: p["peer_id"])}
    return {"state": state, "sig": signing.sign(key, hive_id, "STATE", state)}


def store(side, entries) -> None:
    """Set-up only: put signed states straight into a side's HiveMap."""
    with side.db.transaction() as conn:
        for e in entries:
            hivemap.put_if_newer(conn, e["state"], e["sig"], side.ctx.clock.now())


def entry_bytes(entry) -> int:
    """What one entry costs on the wire inside a FULL_SYNC."""
    return len(encode(MsgType.GOSSIP, entry)) // 2
