"""Pure rules of the HiveMap: the fleet hash and the per-member digests it covers, what two
views lack of each other, when to broadcast, how a node's own state is summarised from
lightningd's answers, and how a FULL_SYNC is cut into messages."""
from __future__ import annotations

import hashlib
import statistics
from collections import OrderedDict

from handlers.wire.signing import canonical_json
from handlers.wire.framing import MAX_MESSAGE_BYTES

MAX_EXTERNAL_PEERS = 200          # the largest channels' peers, to bound a state's size
USABLE_STATES = ("CHANNELD_NORMAL", "CHANNELD_AWAITING_SPLICE")


def digest(states) -> list[dict]:
    """`[{peer_id, version, timestamp}, ...]` sorted by peer_id: what a view holds, without
    the states themselves (a DIGEST message carries it)."""
    return sorted(({"peer_id": s["peer_id"], "version": s["version"],
                    "timestamp": s["timestamp"]} for s in states),
                  key=lambda s: s["peer_id"])


def fleet_hash(states) -> str:
    """SHA-256 (hex) of the canonical JSON of the digest: equal for equal views, whatever
    order they were built in. Written out directly (the same text as `canonical_json`:
    hex ids, numbers as JSON writes them): every member computes it for every change."""
    return fleet_hash_of_rows(sorted((s["peer_id"], s["timestamp"], s["version"])
                                     for s in states))


SETTLE_SECONDS = 10     # a state younger than this is still travelling as GOSSIP


def fleet_hash_of_rows(rows) -> str:
    """`fleet_hash` of `(peer_id, timestamp, version)` rows already sorted by peer_id (as
    storage.hivemap.digest_rows reads them: no dict per member)."""
    text = "[" + ",".join('{"peer_id":"%s","timestamp":%s,"version":%s}' % r
                          for r in rows) + "]"
    return hashlib.sha256(text.encode()).hexdigest()


def differences(ours: list[dict], theirs: list[dict], members: set[str]
                ) -> tuple[list[dict], list[str]]:
    """Between our entries (`{"state", "sig"}`) and a peer's digest: our entries the peer
    lacks or holds an older version of, and the members whose state the peer holds newer
    than ours or we lack. Only members count: a sync never adds one."""
    def key(s):
        return (s["version"], s["timestamp"])
    held = {d["peer_id"]: key(d) for d in theirs}
    mine = {e["state"]["peer_id"]: key(e["state"]) for e in ours}
    they_lack = [e for e in ours if e["state"]["peer_id"] in members
                 and held.get(e["state"]["peer_id"], (0, 0)) < key(e["state"])]
    we_lack = sorted(p for p, k in held.items() if p in members and mine.get(p, (0, 0)) < k)
    return they_lack, we_lack


class Recent:
    """A bounded map that forgets the least recently written key first."""

    def __init__(self, max_keys: int):
        self.max_keys = max_keys
        self._items: OrderedDict = OrderedDict()

    def get(self, key):
        return self._items.get(key)

    def put(self, key, value) -> None:
        self._items.pop(key, None)
        self._items[key] = value
        while len(self._items) > self.max_keys:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def summarize(our_id: str, channels: list[dict], outputs: list[dict],
              members: set[str]) -> dict:
    """Our capacity, idle on-chain funds, fee policy and external peers, from
    `listpeerchannels` and `listfunds`. Channels to members are fleet-internal: they count
    in capacity but are not external peers."""
    capacity_msat = 0
    external: dict[str, int] = {}
    bases, ppms = [], []
    for ch in channels:
        if ch.get("state") not in USABLE_STATES:
            continue
        total = int(ch.get("total_msat", 0))
        capacity_msat += total
        if ch.get("peer_id") not in members:
            external[ch["peer_id"]] = external.get(ch["peer_id"], 0) + total // 1000
            bases.append(int(ch.get("fee_base_msat", 0)))
            ppms.append(int(ch.get("fee_proportional_millionths", 0)))
    idle_msat = sum(int(o.get("amount_msat", 0)) for o in outputs
                    if o.get("status") == "confirmed" and not o.get("reserved"))
    largest = sorted(external.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_EXTERNAL_PEERS]
    return {
        "peer_id": our_id,
        "capacity_sat": capacity_msat // 1000,
        "available_sat": idle_msat // 1000,
        "fee_policy": {"base_msat": int(statistics.median(bases)) if bases else 0,
                       "ppm": int(statistics.median(ppms)) if ppms else 0},
        "peers": [{"peer_id": p, "capacity_sat": c} for p, c in sorted(largest)],
    }


def should_broadcast(last: dict | None, now_state: dict, now: float, config,
                     status_event: bool = False) -> str | None:
    """Why our state must be broadcast now, or None. `last` is the state we last sent."""
    if last is None:
        return "first"
    if status_event:
        return "status"
    old, new = last["capacity_sat"], now_state["capacity_sat"]
    if old == 0:
        if new != 0:
            return "capacity"
    elif abs(new - old) * 100 > config.gossip_capacity_threshold_pct * old:
        return "capacity"
    if now_state["fee_policy"] != last["fee_policy"]:
        return "fee_policy"
    if now - last["timestamp"] >= config.heartbeat_interval:
        return "heartbeat"
    return None


def chunk(entries: list[dict], encode_chunk, limit: int = MAX_MESSAGE_BYTES,
          max_chunks: int | None = None, max_items: int | None = None) -> list[str]:
    """Cut entries into as few messages as fit `limit` bytes (and hold at most `max_items`
    entries) each, the first `max_chunks` of them if given; every message is valid on its
    own. `encode_chunk(entries, index, total)` returns the message hex."""
    # Sizes are summed, not re-encoded per entry; the ASCII-escaped canonical form is never
    # shorter than what the wire writes, so the estimate errs on the safe side.
    overhead = len(encode_chunk([], 99999, 99999)) // 2
    groups: list[list[dict]] = [[]]
    size = overhead
    for entry in entries:
        entry_size = len(canonical_json(entry)) + 1
        if overhead + entry_size > limit:
            raise ValueError(f"the state of {entry.get('state', {}).get('peer_id')} alone "
                             f"exceeds {limit} bytes")
        if size + entry_size > limit or len(groups[-1]) == max_items:
            groups.append([])
            size = overhead
        groups[-1].append(entry)
        size += entry_size
    if max_chunks is not None:
        groups = groups[:max_chunks] if groups[0] else []
    out = [encode_chunk(g, i, len(groups)) for i, g in enumerate(groups)]
    if any(len(m) // 2 > limit for m in out):
        raise ValueError("a FULL_SYNC chunk came out over the limit")
    return out
