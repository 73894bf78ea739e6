"""What each tier may do, in one table (docs/PROTOCOL.md §7 shows the same table; a test
keeps them equal). Handlers that grant a right ask `may`."""
from __future__ import annotations

RIGHTS: dict[str, tuple[str, ...]] = {
    "invite": ("admin",),
    "request_promotion": ("neophyte",),
    "vouch": ("member", "admin"),
    "vote": ("member", "admin"),
    "propose_ban": ("member", "admin"),
    "leave": ("neophyte", "member"),
    "gossip": ("neophyte", "member", "admin"),
    "announce_intents": ("neophyte", "member", "admin"),
    "zero_fee_policy": ("neophyte", "member", "admin"),
}
# The tiers whose members count in a quorum (vouch and vote above).
VOTING_TIERS = RIGHTS["vote"]


def may(tier: str | None, right: str) -> bool:
    return tier in RIGHTS[right]
