"""Fuzzing through the real plugin process: three stand-in nodes run plugin.py, form a hive
and talk; the messages the stand-in's network delivered to the admin are the seeds, and
mutated, malformed, oversized and replayed copies go to the admin through lightningd's own
path (`sendcustommsg` on a member, the admin's custommsg hook). Stand-in only: it reads
the network's trace of delivered messages and the hook faults the stand-in records, which
the real daemon does not expose."""
from __future__ import annotations

import random
import time

from pyln.client import RpcError

from handlers.wire.framing import MAX_MESSAGE_BYTES, peek
from tests.fleet_helpers import form_hive
from tests.fuzz import mutate

FAST = {"hive-tick-seconds": 1, "hive-intent-hold-seconds": 5,
        "hive-intent-expire-seconds": 60}
OPEN_TARGET = "02" + "6b" * 32


def _seeds(fleet, admin, members):
    ids = {m.id for m in members}
    return [(src, payload) for _, src, dst, payload, outcome in list(fleet.network.trace)
            if outcome == "delivered" and dst == admin.id and src in ids
            and peek(payload) is not None]


def _identity(node):
    members = node.rpc.call("hive-members")
    return (members["hive_id"], sorted((m["peer_id"], m["tier"]) for m in members["members"]))


def run(fleet, messages: int, seed: int = 0) -> dict:
    """Form a hive, fuzz the admin with `messages` messages, and return the figures."""
    a, b, c = fleet.nodes(3, options=FAST)
    form_hive(fleet, [a, b, c])
    b.rpc.call("hive-intent", {"type": "channel_open", "target": OPEN_TARGET,
                               "amount_sat": 100_000})
    fleet.wait_for(lambda: {peek(p) for _, p in _seeds(fleet, a, (b, c))} >= {32777, 32783},
                   timeout=30, what="gossip and an intent to reach the admin")
    seeds = _seeds(fleet, a, (b, c))
    by_id = {b.id: b, c.id: c}
    identity = _identity(a)
    src = mutate.RandomSource(random.Random(seed))
    sent = undeliverable = 0
    started = time.monotonic()
    for i in range(messages):
        sender, payload = src.choice(seeds)
        msg = mutate.make(src, src.choice(mutate.CATEGORIES), payload, int(payload[:4], 16))
        if len(msg) // 2 > MAX_MESSAGE_BYTES or len(msg) % 2 or len(msg) < 4:
            # lightningd's sendcustommsg refuses these before they reach the wire
            undeliverable += 1
            continue
        try:
            by_id[src.choice([sender, b.id, c.id])].rpc.call(
                "sendcustommsg", {"node_id": a.id, "msg": msg})
            sent += 1
        except RpcError:
            undeliverable += 1
    fleet.wait_for(lambda: fleet.network.stats["sent"] <= fleet.network.stats["delivered"]
                   + fleet.network.stats["lost"] + fleet.network.stats["dropped"]
                   + fleet.network.stats["partitioned"], timeout=120,
                   what="the fuzzed messages to be delivered")
    elapsed = time.monotonic() - started
    alive = "version" in a.rpc.call("hive-status")
    hook_errors = [str(f) for n in (a, b, c) for f in n.faults]
    broken = [line.message for line in a.logs
              if line.level == "broken" and line.prefix.startswith("plugin-")]
    return {"messages": messages, "sent": sent, "undeliverable": undeliverable,
            "seconds": elapsed, "rate": messages / elapsed if elapsed else 0.0,
            "plugin_alive": alive, "hook_errors": hook_errors, "error_logs": broken,
            "identity_unchanged": _identity(a) == identity, "seed_messages": len(seeds)}
