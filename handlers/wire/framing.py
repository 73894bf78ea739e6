"""Framing of every hive message: `u16 type (big-endian) || b"HIVE" || UTF-8 JSON object`.

`peek` recognises our messages without parsing them (other plugins use custom messages
too); `decode` then applies, in this order and before any expensive work: the size
limit, the JSON nesting limit, UTF-8 and JSON validity, the object shape and the
protocol version. Unknown fields are ignored so a newer peer can add some.
"""
from __future__ import annotations

import json
import re
from enum import IntEnum
from itertools import accumulate

MAGIC = b"HIVE"
PROTOCOL = "cl-hive"
VERSION = 1
MAX_MESSAGE_BYTES = 65535          # BOLT #1: a whole message, type included
MAX_JSON_DEPTH = 6


class MsgType(IntEnum):
    # Odd: a peer that does not know them ignores them (BOLT #1 "it's ok to be odd").
    HELLO = 32769
    CHALLENGE = 32771
    ATTEST = 32773
    WELCOME = 32775
    # Later phases take the next odd numbers; the seed fixes these already:
    GOSSIP = 32777
    STATE_HASH = 32779
    FULL_SYNC = 32781
    INTENT = 32783
    MEMBER_ADDED = 32785
    INTENT_ABORT = 32787
    DIGEST = 32789
    PROPOSAL = 32791
    VOTE = 32793
    DECISION = 32795
    LEAVE = 32797
    MEMBERSHIP_HASH = 32799
    MEMBERSHIP_SYNC = 32801
    INTENT_ACK = 32803
    JOIN_REFUSED = 32805


KNOWN_TYPES = frozenset(int(t) for t in MsgType)


class WireError(ValueError):
    """A message of ours that cannot be accepted; the reason is logged, never sent back."""


def peek(payload_hex) -> int | None:
    """The hive message type of a custommsg payload, or None when it is not ours."""
    if not isinstance(payload_hex, str) or len(payload_hex) < 12:
        return None
    try:
        head = bytes.fromhex(payload_hex[:12])
    except ValueError:
        return None
    msg_type = int.from_bytes(head[:2], "big")
    if head[2:6] != MAGIC or msg_type not in KNOWN_TYPES:
        return None
    return msg_type


def encode(msg_type: MsgType, body: dict) -> str:
    """The `msg` hex for sendcustommsg. Raises WireError rather than send an oversize one."""
    data = json.dumps({"v": VERSION, **body}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")
    raw = int(msg_type).to_bytes(2, "big") + MAGIC + data
    if len(raw) > MAX_MESSAGE_BYTES:
        raise WireError(f"{MsgType(msg_type).name} would be {len(raw)} bytes; "
                        f"the limit is {MAX_MESSAGE_BYTES}")
    return raw.hex()


# A JSON string (an unterminated one runs to the end), and anything but a bracket.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def json_depth(text: str) -> int:
    """Deepest nesting of [ and { outside strings, without building anything. The regular
    expressions do the scanning in C: this runs on every message before it is parsed.
    Without a backslash no quote is escaped, so every other piece between quotes is
    inside a string (an unterminated one runs to the end): splitting is cheaper."""
    if "\\" in text:
        outside = _STRING.sub("", text)
    else:
        outside = "".join(text.split('"')[::2])
    brackets = _NOT_BRACKET.sub("", outside)
    return max(accumulate((1 if c in "[{" else -1 for c in brackets), initial=0))


def decode(payload_hex: str) -> tuple[MsgType, dict]:
    msg_type = peek(payload_hex)
    if msg_type is None:
        raise WireError("not a hive message")
    if len(payload_hex) > 2 * MAX_MESSAGE_BYTES:
        raise WireError(f"message over {MAX_MESSAGE_BYTES} bytes")
    try:
        raw = bytes.fromhex(payload_hex)
        text = raw[6:].decode("utf-8")
    except ValueError as e:     # odd-length or non-hex payload, or invalid UTF-8
        raise WireError(f"undecodable payload: {e}") from None
    if json_depth(text) > MAX_JSON_DEPTH:
        raise WireError(f"JSON nested deeper than {MAX_JSON_DEPTH}")
    try:
        body = json.loads(text)
    except ValueError as e:
        raise WireError(f"not JSON: {e}") from None
    if not isinstance(body, dict):
        raise WireError("body is not a JSON object")
    v = body.get("v")
    if type(v) is not int or v < 1:
        raise WireError(f"bad protocol version {v!r}")
    return MsgType(msg_type), body
