"""The typed shape of every hive message and signed record, as data.

`parse(SCHEMA, body)` returns only the fields the schema names, each checked for type and
bounds; a failure raises WireError naming the field. Unknown fields are dropped, so a
newer peer may add fields. docs/PROTOCOL.md lists the same fields and bounds.
"""
from __future__ import annotations

import re
from typing import Callable

from handlers.frame.config import BY_NAME
from handlers.wire.framing import WireError

_HEX = re.compile(r"[0-9a-f]*")
_NODE_ID = re.compile(r"0[23][0-9a-f]{64}")
_ZBASE = re.compile(r"[ybndrfg8ejkmcpqxot1uwisza345h769]{104}")
TIERS = ("neophyte", "member", "admin")
INVITE_TIERS = ("neophyte", "member")
MAX_MEMBERS_IN_WELCOME = 100

Check = Callable[[object], object]


def hex_str(length: int) -> Check:
    def check(v):
        if not isinstance(v, str) or len(v) != length or not _HEX.fullmatch(v):
            raise ValueError(f"expected {length} lowercase hex characters")
        return v
    return check


def node_id(v):
    if not isinstance(v, str) or not _NODE_ID.fullmatch(v):
        raise ValueError("expected a node id (66 hex characters starting 02 or 03)")
    return v


_SCID = re.compile(r"(0|[1-9][0-9]{0,7})x(0|[1-9][0-9]{0,7})x(0|[1-9][0-9]{0,4})")


def short_channel_id(v):
    """`<block>x<tx>x<out>`, as lightningd writes it (block and tx < 2^24, out < 2^16)."""
    m = _SCID.fullmatch(v) if isinstance(v, str) else None
    if m is None or int(m[1]) >= 2**24 or int(m[2]) >= 2**24 or int(m[3]) >= 2**16:
        raise ValueError("expected a short channel id <block>x<tx>x<out>")
    return v


def zbase(v):
    if not isinstance(v, str) or not _ZBASE.fullmatch(v):
        raise ValueError("expected a 104-character zbase32 signature")
    return v


def text(max_len: int, min_len: int = 0) -> Check:
    def check(v):
        if not isinstance(v, str) or not min_len <= len(v) <= max_len:
            raise ValueError(f"expected a string of {min_len} to {max_len} characters")
        return v
    return check


def integer(lo: int, hi: int) -> Check:
    def check(v):
        if type(v) is not int or not lo <= v <= hi:
            raise ValueError(f"expected an integer from {lo} to {hi}")
        return v
    return check


def one_of(*values: str) -> Check:
    def check(v):
        if v not in values:
            raise ValueError(f"expected one of {'|'.join(values)}")
        return v
    return check


def optional(inner: Check) -> Check:
    def check(v):
        return None if v is None else inner(v)
    return check


def list_of(inner: Check, max_items: int) -> Check:
    def check(v):
        if not isinstance(v, list) or len(v) > max_items:
            raise ValueError(f"expected a list of at most {max_items} items")
        return [inner(x) for x in v]
    return check


def record(schema: dict) -> Check:
    def check(v):
        return parse(schema, v)
    return check


def parse(schema: dict, body) -> dict:
    if not isinstance(body, dict):
        raise WireError("expected a JSON object")
    out = {}
    for name, check in schema.items():
        try:
            # An absent field is null: only `optional` fields accept that.
            out[name] = check(body.get(name))
        except ValueError as e:       # WireError is a ValueError: nested names chain
            reason = "missing" if name not in body else str(e)
            raise WireError(f"{name}: {reason}") from None
    return out


TIMESTAMP = integer(0, 2**40)
SESSION = hex_str(32)
HIVE_ID = hex_str(32)
NONCE = hex_str(64)

# Signed records: the fields below are exactly what the signature covers.
GENESIS = {"name": text(64, min_len=1), "admin": node_id, "created_at": TIMESTAMP, "nonce": hex_str(32)}
TICKET = {"hive_id": HIVE_ID, "admin": node_id, "tier": one_of(*INVITE_TIERS),
          "ticket_id": hex_str(32), "issued_at": TIMESTAMP, "expires_at": TIMESTAMP,
          "peer_id": optional(node_id)}
ADMISSION = {"hive_id": HIVE_ID, "member": node_id, "tier": one_of(*TIERS),
             "admitted_at": TIMESTAMP, "ticket_id": optional(hex_str(32))}
# The attest manifest as the joiner signs it (the nonce binds it to one session).
MANIFEST = {"session": SESSION, "nonce": NONCE, "pubkey": node_id, "admin": node_id,
            "plugin_version": text(32), "features": list_of(text(32), 16)}

SIGNED_GENESIS = {**GENESIS, "sig": zbase}
SIGNED_ADMISSION = {**ADMISSION, "sig": zbase}

# Messages (the `v` field is checked by wire.decode).
HELLO = {"session": SESSION, "ticket": text(2048)}
CHALLENGE = {"session": SESSION, "hive_id": HIVE_ID, "nonce": NONCE}
ATTEST = {"session": SESSION, "nonce": NONCE, "pubkey": node_id, "plugin_version": text(32),
          "features": list_of(text(32), 16), "sig": zbase}
# Why an admin refused a HELLO: only what the ticket's holder could know already.
JOIN_REFUSAL_REASONS = ("ticket_used", "ticket_expired", "ticket_bound", "hive_full", "banned")
JOIN_REFUSED = {"session": SESSION, "reason": one_of(*JOIN_REFUSAL_REASONS)}
WELCOME = {"session": SESSION, "hive_id": HIVE_ID, "genesis": record(SIGNED_GENESIS),
           "admission": record(SIGNED_ADMISSION),
           "members": list_of(record(SIGNED_ADMISSION), MAX_MEMBERS_IN_WELCOME)}
MEMBER_ADDED = {"hive_id": HIVE_ID, "admission": record(SIGNED_ADMISSION)}


def unsigned(signed: dict) -> dict:
    return {k: v for k, v in signed.items() if k != "sig"}

# HiveMap (see docs/PROTOCOL.md §5). A member's state, signed by that member (KIND STATE).
MAX_VERSION = 2**53
SATS = integer(0, 21_000_000 * 100_000_000)
STATE = {"peer_id": node_id, "version": integer(1, MAX_VERSION), "timestamp": TIMESTAMP,
         "capacity_sat": SATS, "available_sat": SATS,
         "fee_policy": record({"base_msat": integer(0, 2**32), "ppm": integer(0, 2**32)}),
         "peers": list_of(record({"peer_id": node_id, "capacity_sat": SATS}), 200)}
SIGNED_STATE = {"state": record(STATE), "sig": zbase}
GOSSIP = SIGNED_STATE
# `settled`: the hash covers the states made by then (absent: every state held).
STATE_HASH = {"hash": hex_str(64), "count": integer(0, 100_000), "settled": optional(TIMESTAMP)}
FULL_SYNC = {"entries": list_of(record(SIGNED_STATE), 1000), "chunk": integer(0, 9999),
             "chunks": integer(1, 9999)}
# DIGEST (docs/PROTOCOL.md §5): a summary (`hashes`: one 8-hex hash per bucket) or a
# listing (`buckets` listed whole, one [id prefix, version, timestamp] per member in them).
# Up to 1,000 members (hive-max-members) fit one listing: about 40 bytes each.
MAX_DIGESTS = 1000
MAX_BUCKETS = 1024


def hex_blocks(block: int, max_blocks: int) -> Check:
    """Lowercase hex, a whole number of `block`-character blocks, at most `max_blocks`."""
    def check(v):
        if not isinstance(v, str) or len(v) % block or len(v) > block * max_blocks \
                or not _HEX.fullmatch(v):
            raise ValueError(f"expected hex in blocks of {block}, at most {max_blocks}")
        return v
    return check


def digest_row(v):
    if not isinstance(v, list) or len(v) != 3:
        raise ValueError("expected [id prefix, version, timestamp]")
    return [hex_str(16)(v[0]), integer(1, MAX_VERSION)(v[1]), TIMESTAMP(v[2])]


DIGEST = {"of": integer(1, MAX_BUCKETS), "salt": optional(hex_str(16)),
          "settled": optional(TIMESTAMP),
          "hashes": optional(hex_blocks(8, MAX_BUCKETS)),
          "buckets": optional(list_of(integer(0, MAX_BUCKETS - 1), MAX_BUCKETS)),
          "digests": optional(list_of(digest_row, MAX_DIGESTS))}

# Intent locks (docs/PROTOCOL.md §6), each signed by its initiator. The lock's timing
# travels in the record, within the bounds of the options that set it.
# No `ban_peer`: bans are decided by the members' votes, not won in a lock race; a peer
# still sending one is refused like any unknown type.
INTENT_TYPES = ("channel_open", "rebalance")
# Money-moving intents commit only with acknowledgements from a majority of the active
# members (docs/PROTOCOL.md §6), so the minority side of a partition cannot commit one.
# Today that is every intent type.
MAJORITY_INTENT_TYPES = ("channel_open", "rebalance")
_HOLD, _EXPIRE = BY_NAME["hive-intent-hold-seconds"], BY_NAME["hive-intent-expire-seconds"]
INTENT = {"intent_id": hex_str(32), "intent_type": one_of(*INTENT_TYPES), "target": node_id,
          "initiator": node_id, "created_at": TIMESTAMP,
          "amount_sat": optional(integer(1, 21_000_000 * 100_000_000)),
          "hold_seconds": integer(_HOLD.min, _HOLD.max),
          "expire_seconds": integer(_EXPIRE.min, _EXPIRE.max),
          "from_channel": optional(short_channel_id), "to_channel": optional(short_channel_id),
          "max_fee_sats": optional(integer(0, 21_000_000 * 100_000_000))}
# What a rebalance carries (`revenue-rebalance`'s arguments): present exactly for
# `rebalance`, and absent (not null) from other intents, whose signed record is then what
# it was before these fields existed, so members of either version verify them.
REBALANCE_FIELDS = ("from_channel", "to_channel", "max_fee_sats")


def intent_record(parsed: dict) -> dict:
    """A parsed intent as its initiator signed it: rebalance fields only when present."""
    return {k: v for k, v in parsed.items() if k not in REBALANCE_FIELDS or v is not None}
# The commit notice: the initiator's signed word that its intent committed when its hold
# ended (KIND INTENT_COMMIT). An INTENT without one is a pending intent.
INTENT_COMMIT = {"intent_id": hex_str(32), "initiator": node_id, "committed_at": TIMESTAMP}
SIGNED_INTENT_COMMIT = {**INTENT_COMMIT, "sig": zbase}
INTENT_MSG = {"intent": record(INTENT), "sig": zbase,
              "commit": optional(record(SIGNED_INTENT_COMMIT))}


def intent_lock_id(initiator: str, intent_id: str) -> str:
    """What names an intent: its id is its initiator's choice, unique only per initiator."""
    return f"{initiator}:{intent_id}"


ABORT = {"intent_id": hex_str(32), "initiator": node_id, "aborted_at": TIMESTAMP,
         "reason": text(64)}
INTENT_ABORT_MSG = {"abort": record(ABORT), "sig": zbase}

# Membership governance (docs/PROTOCOL.md §7). A proposal asks the voting members to
# promote a neophyte (kind promote: the PROMOTION_REQUEST, made by the neophyte itself),
# to ban a member, or to unban one. `subject` binds it to what it acts on: the target's
# admission (its ref) for promote and ban, the ban's proposal id for unban. Its id is the
# hash of its signed string, so a vote bound to one id can count for no other proposal.
PROPOSAL_KINDS = ("promote", "ban", "unban")
CHOICES = ("yes", "no")
REF = hex_str(64)
PROPOSAL = {"hive_id": HIVE_ID, "kind": one_of(*PROPOSAL_KINDS), "target": node_id,
            "proposer": node_id, "subject": REF, "reason": text(256),
            "created_at": TIMESTAMP, "expires_at": TIMESTAMP}
SIGNED_PROPOSAL = {**PROPOSAL, "sig": zbase}
# A vote (a VOUCH when the proposal is a promotion), signed by its voter.
VOTE = {"proposal_id": REF, "voter": node_id, "choice": one_of(*CHOICES),
        "voted_at": TIMESTAMP}
SIGNED_VOTE = {**VOTE, "sig": zbase}
# At most 200 votes travel in one decision (62,771 bytes with the longest reason; 208
# fit): a majority of up to 399 voters (README, known limits).
MAX_VOTES = 200
# A proposal with the votes that decide it: the promotion record, the ban record.
DECISION = {"proposal": record(SIGNED_PROPOSAL), "votes": list_of(record(SIGNED_VOTE), MAX_VOTES)}
# A member's own word that it leaves, bound to its admission.
LEAVE = {"hive_id": HIVE_ID, "member": node_id, "subject": REF, "left_at": TIMESTAMP}
SIGNED_LEAVE = {**LEAVE, "sig": zbase}

PROPOSAL_MSG = {"proposal": record(SIGNED_PROPOSAL)}
VOTE_MSG = {"proposal": record(SIGNED_PROPOSAL), "vote": record(SIGNED_VOTE)}
DECISION_MSG = {"decision": record(DECISION)}
LEAVE_MSG = {"leave": record(SIGNED_LEAVE)}
MEMBERSHIP_HASH = {"hash": hex_str(64), "count": integer(0, 100_000)}
# Every proof the sender holds, in as many messages as it takes (each under the size
# limit): admissions, final decisions, leaves, and open proposals with their votes.
MAX_SYNC_ITEMS = 300
MEMBERSHIP_SYNC = {"hash": hex_str(64), "chunk": integer(0, 9999), "chunks": integer(1, 9999),
                   "admissions": list_of(record(SIGNED_ADMISSION), MAX_SYNC_ITEMS),
                   "decisions": list_of(record(DECISION), MAX_SYNC_ITEMS),
                   "leaves": list_of(record(SIGNED_LEAVE), MAX_SYNC_ITEMS),
                   "open": list_of(record(DECISION), MAX_SYNC_ITEMS)}

# A member's acknowledgement of one intent (KIND INTENT_ACK), sent to its initiator: its
# word that it acknowledges no other intent on this type and target while this one lives.
ACK = {"intent_id": hex_str(32), "initiator": node_id, "intent_type": one_of(*INTENT_TYPES),
       "target": node_id, "member": node_id, "acked_at": TIMESTAMP}
INTENT_ACK_MSG = {"ack": record(ACK), "sig": zbase}
