#!/usr/bin/env python3
"""The floor for the message path: a bare pyln plugin whose custommsg hook does the one
thing no hive plugin can skip, one `checkmessage` per signed GOSSIP, and nothing else (no
authorization, no storage, no log line). Its message string is built the way cl-hive
builds it, so lightningd checks the same bytes. Used by bench/message_path.py only."""
import json

from pyln.client import Plugin

plugin = Plugin()
counts = {"verified": 0, "refused": 0}


@plugin.hook("custommsg")
def on_custommsg(peer_id, payload, plugin, **kwargs):
    body = json.loads(bytes.fromhex(payload[12:]))      # 2-byte type, "HIVE", then JSON
    state = body["state"]
    message = "cl-hive/1|%s|STATE|%s" % (plugin.hive_id, json.dumps(
        state, sort_keys=True, separators=(",", ":"), ensure_ascii=True))
    res = plugin.rpc.checkmessage(message, body["sig"], state["peer_id"])
    counts["verified" if res.get("verified") else "refused"] += 1
    return {"result": "continue"}


@plugin.method("bare-counts")
def bare_counts(plugin, hive_id=None):
    """What the hook checked so far; `hive_id` sets the id it builds messages with."""
    if hive_id is not None:
        plugin.hive_id = hive_id
    return counts


plugin.hive_id = ""
plugin.run()
