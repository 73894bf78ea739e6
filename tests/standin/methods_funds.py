"""Funds and channel methods: listfunds, listpeerchannels, fundchannel, setchannel (§5)."""
from . import params as P
from .fake_data import CHANNEL_TYPE
from .params import OPT, REQ, RpcFail

FUND_CANNOT_AFFORD = 301
FUNDING_PEER_NOT_CONNECTED = 305
FUNDING_UNKNOWN_PEER = 306
FUNDING_TX_WEIGHT = 724  # a 1-input 2-output funding tx, for the fee estimate


def _peer_channel(node, c):
    me, peer = node.id, c.other(node.id)
    to_us = c.balance[me]
    reserve = c.capacity_msat // 100
    f = c.fees[me]
    connected = node.peer_state(peer) == "connected"
    out = {
        "peer_id": peer, "peer_connected": connected, "state": c.state,
        "channel_id": c.channel_id, "direction": c.direction(me),
        "opener": "local" if c.opener == me else "remote", "private": c.private,
        "funding_txid": c.funding_txid, "funding_outnum": c.funding_outnum,
        "funding": {"local_funds_msat": c.capacity_msat if c.opener == me else 0,
                    "remote_funds_msat": 0 if c.opener == me else c.capacity_msat},
        "to_us_msat": to_us, "total_msat": c.capacity_msat,
        "spendable_msat": max(0, to_us - reserve), "receivable_msat": max(0, c.capacity_msat - to_us - reserve),
        "fee_base_msat": f["base"], "fee_proportional_millionths": f["ppm"],
        "minimum_htlc_out_msat": f["htlcmin"], "maximum_htlc_out_msat": f["htlcmax"],
        # Where lightningd puts our side's channel_update values (companions.md).
        "updates": {"local": {"fee_base_msat": f["base"], "fee_proportional_millionths": f["ppm"],
                              "htlc_minimum_msat": f["htlcmin"], "htlc_maximum_msat": f["htlcmax"]}},
        "their_reserve_msat": reserve, "our_reserve_msat": reserve,
        "state_changes": [], "status": [], "htlcs": [],
    }
    if c.scid is not None:          # none until the funding transaction confirms
        out["short_channel_id"] = c.scid
    if connected and c.state == "CHANNELD_NORMAL":
        out["owner"] = "channeld"
    return out


def listpeerchannels(node, params):
    a = P.parse(params, ("id", OPT, P.node_id), ("short_channel_id", OPT, P.string), ("channel_id", OPT, P.hexstr))
    with node.data.lock:
        chans = [c for c in node.data.channels
                 if a["id"] in (None, c.other(node.id)) and a["short_channel_id"] in (None, c.scid)
                 and a["channel_id"] in (None, c.channel_id)]
        return {"channels": [_peer_channel(node, c) for c in chans]}


def listfunds(node, params):
    a = P.parse(params, ("spent", OPT, P.boolean, False))
    with node.data.lock:
        outs = [dict(o) for o in node.data.outputs if a["spent"] or o["status"] != "spent"]
        chans = [{"peer_id": c.other(node.id), "our_amount_msat": c.balance[node.id], "amount_msat": c.capacity_msat,
                  "funding_txid": c.funding_txid, "funding_output": c.funding_outnum,
                  "connected": node.peer_state(c.other(node.id)) == "connected", "state": c.state,
                  "channel_id": c.channel_id, **({"short_channel_id": c.scid} if c.scid else {})}
                 for c in node.data.channels]
    return {"outputs": outs, "channels": chans}


def fundchannel(node, params):
    a = P.parse(params, ("id", REQ, P.node_id), ("amount", REQ, P.sat_or_all), ("feerate", OPT, P.anything),
                ("announce", OPT, P.boolean, True), ("minconf", OPT, P.u64), ("push_msat", OPT, P.msat, 0),
                ("close_to", OPT, P.string), ("request_amt", OPT, P.anything), ("compact_lease", OPT, P.string),
                ("utxos", OPT, P.anything), ("mindepth", OPT, P.u64), ("reserve", OPT, P.anything),
                ("channel_type", OPT, P.anything))
    peer = a["id"]
    if peer not in node.known_peers():
        raise RpcFail(FUNDING_UNKNOWN_PEER, "Unknown peer %s" % peer)
    if node.peer_state(peer) != "connected":
        raise RpcFail(FUNDING_PEER_NOT_CONNECTED, "Peer not connected")
    data = node.data
    with data.lock:
        utxos = data.spendable_outputs()
        have = sum(o["amount_msat"] for o in utxos) // 1000
        fee = data.feerates_perkw["opening"] * FUNDING_TX_WEIGHT // 1000
        amount = have - fee if a["amount"] == "all" else a["amount"]
        if amount <= 0 or amount + fee > have:
            short = amount + fee - have if a["amount"] != "all" else fee
            raise RpcFail(FUND_CANNOT_AFFORD, "Could not afford %dsat using all %d available UTXOs: %dsat short"
                          % (max(amount, 0), len(utxos), short))
        if a["push_msat"] > amount * 1000:
            raise RpcFail(P.INVALID_PARAMS, "Requested to push_msat of %dmsat is greater than available funding amount %dsat"
                          % (a["push_msat"], amount))
        for o in utxos:
            o["status"] = "spent"
        change = have - amount - fee
        if change > 0:
            data.add_funds(change)
    chan = node.network.open_channel(node, peer, amount, a["push_msat"], announce=a["announce"], confirmed=False)
    return {"tx": "02000000" + chan.funding_txid * 2, "txid": chan.funding_txid, "outnum": chan.funding_outnum,
            "channel_id": chan.channel_id, "channel_type": CHANNEL_TYPE}


def setchannel(node, params):
    a = P.parse(params, ("id", REQ, P.string), ("feebase", OPT, P.msat), ("feeppm", OPT, P.u64),
                ("htlcmin", OPT, P.msat), ("htlcmax", OPT, P.msat), ("enforcedelay", OPT, P.u64, 600),
                ("ignorefeelimits", OPT, P.boolean, False))
    ident = a["id"]
    with node.data.lock:
        chans = [c for c in node.data.channels
                 if ident in ("all", c.other(node.id), c.scid, c.channel_id) and c.state == "CHANNELD_NORMAL"]
        if not chans:
            if len(ident) == 66:
                raise RpcFail(P.LIGHTNINGD, "Could not find any active channels of peer with that id")
            raise RpcFail(P.LIGHTNINGD, "Could not find active channel with id %s" % ident)
        out = []
        for c in chans:
            f = c.fees[node.id]
            for key, field in (("feebase", "base"), ("feeppm", "ppm"), ("htlcmin", "htlcmin"), ("htlcmax", "htlcmax")):
                if a[key] is not None:
                    f[field] = a[key]
            out.append({"peer_id": c.other(node.id), "channel_id": c.channel_id, "short_channel_id": c.scid,
                        "fee_base_msat": f["base"], "fee_proportional_millionths": f["ppm"],
                        "ignore_fee_limits": a["ignorefeelimits"], "minimum_htlc_out_msat": f["htlcmin"],
                        "maximum_htlc_out_msat": f["htlcmax"]})
    for c in chans:
        if c.announced:
            node.network.announce_channel(c)  # a channel_update reaches the others' graphs
    return {"channels": out}


METHODS = {"listpeerchannels": listpeerchannels, "listfunds": listfunds, "fundchannel": fundchannel,
           "setchannel": setchannel}
