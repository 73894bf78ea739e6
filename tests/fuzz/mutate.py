"""What a hostile or broken peer may send, made from recorded valid messages: malformed
bytes, mutated valid messages, oversized ones, and exact replays.

The operators draw every choice from a `Source`, so the same code runs under hypothesis
(`DrawSource`: shrinking, the bounded test) and under a seeded `random.Random`
(`RandomSource`: the million-message `make fuzz` run)."""
from __future__ import annotations

import json
import random

from handlers.wire.framing import MAGIC, MAX_MESSAGE_BYTES, MsgType

CATEGORIES = ("malformed", "mutated", "oversized", "replayed")
TYPES = tuple(MsgType)


class RandomSource:
    def __init__(self, rng: random.Random):
        self.rng = rng

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def choice(self, options):
        return options[self.rng.randrange(len(options))]

    def raw(self, n: int) -> bytes:
        return self.rng.randbytes(n)


class DrawSource:
    """Choices drawn through hypothesis' `data.draw`, so a failure shrinks."""

    def __init__(self, data):
        from hypothesis import strategies as st
        self.data, self.st = data, st

    def integer(self, lo: int, hi: int) -> int:
        return self.data.draw(self.st.integers(lo, hi))

    def choice(self, options):
        return self.data.draw(self.st.sampled_from(list(options)))

    def raw(self, n: int) -> bytes:
        return self.data.draw(self.st.binary(min_size=n, max_size=n))


def header(kind: int) -> bytes:
    return kind.to_bytes(2, "big") + MAGIC


def body_of(msg_hex: str) -> dict:
    return json.loads(bytes.fromhex(msg_hex)[6:])


def _hex_like(src, n):
    return "".join(src.choice("0123456789abcdefABCDEFxyz ") for _ in range(n))


def junk_value(src):
    """A value of the wrong type, out of bounds, or subtly off."""
    pick = src.integer(0, 15)
    if pick == 0:
        return None
    if pick == 1:
        return src.choice([True, False])
    if pick == 2:
        return src.choice([0, -1, 1, 2**31, 2**40 + 1, 2**53 + 1, 2**64, -2**63])
    if pick == 3:
        return src.choice([0.5, 1e308, -0.0])
    if pick == 4:
        return ""
    if pick == 5:
        return _hex_like(src, src.choice([31, 32, 33, 63, 64, 65, 66, 67, 104]))
    if pick == 6:
        return src.choice(["02", "03"]) + _hex_like(src, 64)
    if pick == 7:
        return "\u0000\ud7ff\uffff" * src.integer(1, 4)
    if pick == 8:
        return []
    if pick == 9:
        return {}
    if pick == 10:
        return [junk_value(src) for _ in range(src.integer(1, 3))]
    if pick == 11:
        return {"k": junk_value(src)}
    if pick == 12:
        return "y" * src.choice([103, 104, 105])
    if pick == 13:
        return src.choice(["channel_open", "rebalance", "ban_peer", "admin", "member", "x"])
    if pick == 14:
        return src.integer(-2**70, 2**70)
    return "1x1x1"


def _paths(obj, prefix=()):
    """Every (container path, key) in a decoded body, leaves and containers alike."""
    out = []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) \
        if isinstance(obj, list) else ()
    for k, v in items:
        out.append((prefix, k))
        out += _paths(v, prefix + (k,))
    return out


def _at(obj, path):
    for k in path:
        obj = obj[k]
    return obj


def mutate_body(src, body: dict) -> dict:
    """One to three edits at random places: replace, delete, add, flip a character."""
    for _ in range(src.integer(1, 3)):
        paths = _paths(body)
        if not paths:
            body = {"v": 1}
            continue
        path, key = src.choice(paths)
        parent = _at(body, path)
        op = src.integer(0, 3)
        if op == 0:
            parent[key] = junk_value(src)
        elif op == 1:
            del parent[key]
        elif op == 2 and isinstance(parent, dict):
            parent[f"extra{src.integer(0, 9)}"] = junk_value(src)
        else:
            value = parent[key]
            if isinstance(value, str) and value:
                i = src.integer(0, len(value) - 1)
                parent[key] = value[:i] + src.choice("0af2y~") + value[i + 1:]
            elif isinstance(value, int) and not isinstance(value, bool):
                parent[key] = value + src.choice([-1, 1, 2**32])
            else:
                parent[key] = junk_value(src)
    return body


def encode_raw(kind: int, body) -> str:
    return (header(kind) + json.dumps(body, separators=(",", ":")).encode()).hex()


def malformed(src, seed_hex: str, kind: int) -> str:
    pick = src.integer(0, 9)
    raw = bytes.fromhex(seed_hex)
    if pick == 0:
        return raw[:src.integer(0, len(raw) - 1)].hex()           # truncated
    if pick == 1:
        return (header(kind) + src.raw(src.integer(0, 64))).hex()   # random bytes
    if pick == 2:
        return (header(kind) + b"\xff\xfe" + raw[6:]).hex()          # not UTF-8
    if pick == 3:
        return (header(kind) + src.choice([b"[]", b"1", b"null", b'"s"', b"{", b"{}"])).hex()
    if pick == 4:
        depth = src.integer(5, 200)
        return (header(kind) + b'{"v":1,"a":' + b"[" * depth + b"]" * depth + b"}").hex()
    if pick == 5:
        body = body_of(seed_hex)
        body["v"] = src.choice([0, -1, "1", None, 1.5, 2**70])
        return encode_raw(kind, body)
    if pick == 6:
        body = body_of(seed_hex)
        body.pop("v", None)
        return encode_raw(kind, body)
    if pick == 7:
        return seed_hex[:-1] if len(seed_hex) % 2 == 0 else seed_hex + "0"   # odd length
    if pick == 8:
        i = src.integer(0, len(seed_hex) - 1)
        return seed_hex[:i] + src.choice("gz-") + seed_hex[i + 1:]       # not hex
    return (header(kind) + b'{"v":1,"x":NaN}').hex()


def oversized(src, seed_hex: str, kind: int) -> str:
    body = body_of(seed_hex)
    pick = src.integer(0, 2)
    if pick == 0:               # the whole message past the Lightning limit
        body["pad"] = "a" * (MAX_MESSAGE_BYTES + src.integer(0, 1000))
    elif pick == 1:             # one string far past its field's bound
        paths = [(p, k) for p, k in _paths(body) if isinstance(_at(body, p)[k], str)]
        if paths:
            p, k = src.choice(paths)
            _at(body, p)[k] = "f" * src.choice([300, 5000, 60000])
        else:
            body["pad"] = "f" * 60000
    else:                       # a list far past its bound
        paths = [(p, k) for p, k in _paths(body) if isinstance(_at(body, p)[k], list)]
        item = {"peer_id": "02" + "00" * 32, "version": 1, "timestamp": 1}
        if paths:
            p, k = src.choice(paths)
            lst = _at(body, p)[k]
            _at(body, p)[k] = (lst or [item]) * src.choice([200, 600, 1100])
        else:
            body["entries"] = [item] * 1100
    return encode_raw(kind, body)


def make(src, category: str, seed_hex: str, kind: int) -> str:
    if category == "malformed":
        return malformed(src, seed_hex, kind)
    if category == "mutated":
        # sometimes under another type's header: a valid body where another is expected
        k = kind if src.integer(0, 4) else int(src.choice(TYPES))
        return encode_raw(k, mutate_body(src, body_of(seed_hex)))
    if category == "oversized":
        return oversized(src, seed_hex, kind)
    return seed_hex
