"""Peek and check for incoming custom messages: is this one of ours at all?

Full framing (size, JSON depth, schema, protocol version) arrives with the handshake;
until then the plugin only has to recognise its own messages and ignore everyone else's.
"""
from __future__ import annotations

MAGIC = b"HIVE"
# Our message types are odd (peers that do not know them ignore them) from 32769 up.
FIRST_TYPE = 32769
LAST_TYPE = 32799


def peek(payload_hex: str) -> int | None:
    """The hive message type of a custommsg payload, or None when it is not ours."""
    if not isinstance(payload_hex, str) or len(payload_hex) < 12:
        return None
    try:
        head = bytes.fromhex(payload_hex[:12])
    except ValueError:
        return None
    msg_type = int.from_bytes(head[:2], "big")
    if head[2:6] != MAGIC or not FIRST_TYPE <= msg_type <= LAST_TYPE or msg_type % 2 == 0:
        return None
    return msg_type
