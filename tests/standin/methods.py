"""lightningd's built-in RPC methods with CLN's shapes and errors (§2-§5).

Each method is `fn(node, params) -> result`, raising RpcFail for errors."""

from . import params as P
from .fake_data import INIT_FEATURES, NODE_FEATURES
from .keys import SignatureFormatError, recover_pubkey
from .params import OPT, REQ, RpcFail
from .plugin_host import LIGHTNINGD_VERSION

# Message types lightningd manages itself (wire/peer_wire.csv minus peer_storage 7 and 9).
INTERNAL_TYPES = {
    1: "WIRE_WARNING", 2: "WIRE_STFU", 16: "WIRE_INIT", 17: "WIRE_ERROR", 18: "WIRE_PING", 19: "WIRE_PONG",
    32: "WIRE_OPEN_CHANNEL", 33: "WIRE_ACCEPT_CHANNEL", 34: "WIRE_FUNDING_CREATED", 35: "WIRE_FUNDING_SIGNED",
    36: "WIRE_CHANNEL_READY", 37: "WIRE_START_BATCH", 38: "WIRE_SHUTDOWN", 39: "WIRE_CLOSING_SIGNED",
    40: "WIRE_CLOSING_COMPLETE", 41: "WIRE_CLOSING_SIG", 64: "WIRE_OPEN_CHANNEL2", 65: "WIRE_ACCEPT_CHANNEL2",
    66: "WIRE_TX_ADD_INPUT", 67: "WIRE_TX_ADD_OUTPUT", 68: "WIRE_TX_REMOVE_INPUT", 69: "WIRE_TX_REMOVE_OUTPUT",
    70: "WIRE_TX_COMPLETE", 71: "WIRE_TX_SIGNATURES", 72: "WIRE_TX_INIT_RBF", 73: "WIRE_TX_ACK_RBF",
    74: "WIRE_TX_ABORT", 77: "WIRE_SPLICE_LOCKED", 80: "WIRE_SPLICE", 81: "WIRE_SPLICE_ACK",
    127: "WIRE_PROTOCOL_BATCH_ELEMENT", 128: "WIRE_UPDATE_ADD_HTLC", 129: "WIRE_UPDATE_ADD_HTLC_EXPERIMENTAL",
    130: "WIRE_UPDATE_FULFILL_HTLC", 131: "WIRE_UPDATE_FAIL_HTLC", 132: "WIRE_COMMITMENT_SIGNED",
    133: "WIRE_REVOKE_AND_ACK", 134: "WIRE_UPDATE_FEE", 135: "WIRE_UPDATE_FAIL_MALFORMED_HTLC",
    136: "WIRE_CHANNEL_REESTABLISH", 137: "WIRE_UPDATE_BLOCKHEIGHT", 256: "WIRE_CHANNEL_ANNOUNCEMENT",
    257: "WIRE_NODE_ANNOUNCEMENT", 258: "WIRE_CHANNEL_UPDATE", 259: "WIRE_ANNOUNCEMENT_SIGNATURES",
    260: "WIRE_QUERY_SHORT_CHANNEL_IDS", 261: "WIRE_REPLY_SHORT_CHANNEL_IDS_END", 262: "WIRE_QUERY_CHANNEL_RANGE",
    263: "WIRE_REPLY_CHANNEL_RANGE", 264: "WIRE_GOSSIP_TIMESTAMP_FILTER", 265: "WIRE_PEER_ALT_ADDR",
    513: "WIRE_ONION_MESSAGE",
}
MAX_MESSAGE_BYTES = 65535  # BOLT #1: the encrypted length field is a be16.


def getinfo(node, params):
    P.parse(params)
    d = node.data
    chans = d.channels
    return {
        "id": node.id, "alias": node.alias, "color": node.id[2:8],
        "num_peers": len([p for p in node.known_peers() if node.peer_state(p)]),
        "num_pending_channels": sum(1 for c in chans if c.state in ("CHANNELD_AWAITING_LOCKIN", "OPENINGD")),
        "num_active_channels": sum(1 for c in chans if c.state == "CHANNELD_NORMAL"),
        "num_inactive_channels": sum(1 for c in chans if c.state not in ("CHANNELD_NORMAL", "CHANNELD_AWAITING_LOCKIN", "OPENINGD")),
        "address": [], "binding": [{"type": "ipv4", "address": "127.0.0.1", "port": node.port}],
        "version": LIGHTNINGD_VERSION, "blockheight": d.blockheight, "network": "regtest",
        "fees_collected_msat": d.fees_collected_msat, "lightning-dir": node.network_dir,
        "our_features": {"init": INIT_FEATURES, "node": NODE_FEATURES, "channel": "", "invoice": "02000002024100"},
    }


def signmessage(node, params):
    a = P.parse(params, ("message", REQ, P.string))
    if len(a["message"]) > 65535:
        raise RpcFail(P.INVALID_PARAMS, "Message must be < 64k")
    return node.key.sign_message(a["message"])


def checkmessage(node, params):
    a = P.parse(params, ("message", REQ, P.string), ("zbase", REQ, P.string), ("pubkey", OPT, P.node_id))
    try:
        recovered = recover_pubkey(a["message"], a["zbase"])
    except SignatureFormatError as e:
        raise RpcFail(P.INVALID_PARAMS, str(e))
    if recovered is None:
        return {"verified": False}
    if a["pubkey"] is not None:
        return {"pubkey": recovered, "verified": recovered == a["pubkey"]}
    # Without a pubkey, lightningd asks listnodes whether the key is known (signmessage.c:121-146).
    if recovered not in node.data.graph_nodes:
        raise RpcFail(1301, "pubkey not found in the graph", {"claimed_key": recovered})
    return {"pubkey": recovered, "verified": True}


def sendcustommsg(node, params):
    a = P.parse(params, ("node_id", REQ, P.node_id), ("msg", REQ, P.hexstr))
    raw = bytes.fromhex(a["msg"])
    if len(raw) < 2:
        raise RpcFail(P.INVALID_PARAMS, "msg: should be a message with a 2-byte type: invalid token '%s'" % a["msg"])
    if len(raw) > MAX_MESSAGE_BYTES:
        # CLN would accept it and fail at the transport; refuse loudly (protocol doc §3).
        raise RpcFail(P.INVALID_PARAMS, "msg: %d bytes exceeds the 65535-byte Lightning message limit" % len(raw))
    mtype = int.from_bytes(raw[:2], "big")
    if mtype in INTERNAL_TYPES:
        raise RpcFail(P.INVALID_REQUEST, "Cannot send messages of type %d (%s). It is not possible to send messages "
                      "that have a type managed internally since that might cause issues with the internal state "
                      "tracking." % (mtype, INTERNAL_TYPES[mtype]))
    if mtype % 2 == 0:
        node.log("debug", "lightningd", "sending a custom even message (type %d)" % mtype)
    peer = a["node_id"]
    if peer not in node.known_peers():
        raise RpcFail(P.INVALID_REQUEST, "No such peer: %s" % peer)
    if not node.peer_state(peer):
        raise RpcFail(P.INVALID_REQUEST, "Peer is not connected")
    node.network.send_custommsg(node, peer, a["msg"])
    return {"status": "Message sent to connectd for delivery"}


def listpeers(node, params):
    a = P.parse(params, ("id", OPT, P.node_id), ("level", OPT, P.string))
    peers = []
    for pid in node.known_peers():
        if a["id"] and pid != a["id"]:
            continue
        state = node.peer_state(pid)
        entry = {"id": pid, "connected": state == "connected",
                 "num_channels": sum(1 for c in node.data.channels if c.other(node.id) == pid)}
        if state == "connected":
            other = node.network.node_by_id(pid)
            entry["netaddr"] = ["127.0.0.1:%d" % other.port] if other else []
            entry["features"] = INIT_FEATURES
        peers.append(entry)
    return {"peers": peers}


def _split_connect_id(raw):
    nid, host, port = raw, None, None
    if "@" in raw:
        nid, addr = raw.split("@", 1)
        host, _, p = addr.rpartition(":") if ":" in addr else (addr, "", "")
        port = int(p) if p.isdigit() else None
    return nid, host, port


def connect(node, params):
    a = P.parse(params, ("id", REQ, P.string), ("host", OPT, P.string), ("port", OPT, P.u64))
    nid, host, port = _split_connect_id(a["id"])
    nid = P.node_id("id", nid)
    if a["host"] is not None:
        host, port = a["host"], a["port"] if a["port"] is not None else port
    if nid == node.id:
        raise RpcFail(P.LIGHTNINGD, "Connection to self denied")
    return node.network.connect(node, nid, host, port)


def disconnect(node, params):
    a = P.parse(params, ("id", REQ, P.node_id), ("force", OPT, P.boolean, False))
    if not node.peer_state(a["id"]):
        raise RpcFail(P.LIGHTNINGD, "Peer not connected")
    node.network.disconnect(node, a["id"])
    return {}


def listnodes(node, params):
    a = P.parse(params, ("id", OPT, P.node_id))
    with node.data.lock:
        if a["id"] is not None:
            found = node.data.graph_nodes.get(a["id"])
            nodes = [] if found is None else [dict(found)]
        else:
            nodes = [dict(n) for n in node.data.graph_nodes.values()]
    return {"nodes": nodes}


def listchannels(node, params):
    a = P.parse(params, ("short_channel_id", OPT, P.string), ("source", OPT, P.node_id),
                ("destination", OPT, P.node_id))
    with node.data.lock:
        pool = node.data.graph_channels.values() if a["source"] is None else \
            [node.data.graph_channels[k] for k in node.data.graph_by_source.get(a["source"], {})]
        chans = [dict(c) for c in pool
                 if a["short_channel_id"] in (None, c["short_channel_id"]) and a["source"] in (None, c["source"])
                 and a["destination"] in (None, c["destination"])]
    return {"channels": chans}


def feerates(node, params):
    a = P.parse(params, ("style", REQ, P.string))
    if a["style"] not in ("perkw", "perkb"):
        raise P.bad("style", "should be 'perkw' or 'perkb'", a["style"])
    mult = 4 if a["style"] == "perkb" else 1
    with node.data.lock:
        rates = {k: v * mult for k, v in node.data.feerates_perkw.items()}
    opening = node.data.feerates_perkw["opening"]
    rates["estimates"] = [{"blockcount": b, "feerate": rates["opening"] * 2 // b, "smoothed_feerate": rates["opening"] * 2 // b}
                          for b in (2, 6, 12, 100)]
    return {a["style"]: rates, "onchain_fee_estimates": {
        "opening_channel_satoshis": opening * 702 // 1000, "mutual_close_satoshis": opening * 673 // 1000,
        "unilateral_close_satoshis": opening * 1112 // 1000, "unilateral_close_nonanchor_satoshis": opening * 598 // 1000,
        "htlc_timeout_satoshis": opening * 663 // 1000, "htlc_success_satoshis": opening * 703 // 1000}}


def listforwards(node, params):
    a = P.parse(params, ("status", OPT, P.string), ("in_channel", OPT, P.string), ("out_channel", OPT, P.string),
                ("index", OPT, P.string), ("start", OPT, P.u64), ("limit", OPT, P.u64))
    if a["status"] not in (None, "offered", "settled", "failed", "local_failed"):
        raise P.bad("status", "should be 'offered', 'settled', 'local_failed', 'failed'", a["status"])
    if a["index"] not in (None, "created", "updated"):
        raise P.bad("index", "should be 'created' or 'updated'", a["index"])
    key = (a["index"] or "created") + "_index"
    with node.data.lock:
        out = [{k: v for k, v in f.items() if k != "payment_hash"} for f in node.data.forwards
               if a["status"] in (None, f["status"]) and a["in_channel"] in (None, f["in_channel"])
               and a["out_channel"] in (None, f.get("out_channel")) and f[key] >= (a["start"] or 0)]
    if a["limit"] is not None:
        out = out[:a["limit"]]
    return {"forwards": out}


def check(node, params):
    # pyln-testing calls `check` before every command on real CLN; answer it the same way.
    if isinstance(params, dict) and "command_to_check" in params:
        name = params["command_to_check"]
        if name not in node.all_method_names():
            raise RpcFail(P.METHOD_NOT_FOUND, "Unknown command '%s'" % name)
        return {"command_to_check": name}
    raise RpcFail(P.INVALID_PARAMS, "missing required parameter: command_to_check")


def help(node, params):
    # jsonrpc.c json_help: "<name> <usage>" per command, a plugin's usage as its manifest
    # gave it (the stand-in's own built-ins have none).
    a = P.parse(params, ("command", OPT, P.string))
    usages = {name: "" for name in BUILTINS}
    for h in node.hosts:
        if h.state in ("init", "active") and h.manifest:
            usages.update((m["name"], m["usage"]) for m in h.manifest.get("rpcmethods", []))
    if a["command"] is not None and a["command"] not in usages:
        raise RpcFail(P.METHOD_NOT_FOUND, "Unknown command %s" % a["command"])
    names = [a["command"]] if a["command"] is not None else sorted(usages)
    return {"help": [{"command": "%s %s" % (n, usages[n])} for n in names], "format-hint": "simple"}


def _register():
    from . import methods_datastore, methods_funds, methods_plugins
    table = {name: fn for name, fn in globals().items()
             if name in ("getinfo", "signmessage", "checkmessage", "sendcustommsg", "listpeers", "connect",
                         "disconnect", "listnodes", "listchannels", "feerates", "listforwards", "check",
                         "help")}
    table.update(methods_funds.METHODS)
    table.update(methods_plugins.METHODS)
    table.update(methods_datastore.METHODS)
    return table


BUILTINS = _register()
