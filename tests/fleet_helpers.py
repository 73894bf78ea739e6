"""What several fleet tests do the same way: form a hive through the operator's commands,
and the parameters of a rebalance intent."""


def form_hive(fleet, nodes):
    """Connect every pair, genesis on the first node, then every other node joins with its
    own ticket."""
    admin = nodes[0]
    for i, x in enumerate(nodes):
        for y in nodes[i + 1:]:
            fleet.connect(x, y)
    admin.rpc.call("hive-genesis", {})
    for joiner in nodes[1:]:
        ticket = admin.rpc.call("hive-invite", {})["ticket"]
        assert joiner.rpc.call("hive-join", {"ticket": ticket})["state"] == "joined"
    return nodes


def rebalance_args(node, target, source) -> dict:
    """hive-intent's parameters for a rebalance into `node`'s channel to `target` from its
    channel to `source`."""
    def scid(peer):
        return node.rpc.listpeerchannels(peer.id)["channels"][0]["short_channel_id"]
    return {"type": "rebalance", "target": target.id, "amount_sat": 50_000,
            "from_channel": scid(source), "to_channel": scid(target), "max_fee_sats": 50}


def intent_states(node):
    return {i["intent_id"]: i["state"] for i in node.rpc.call("hive-intents")["intents"]}
