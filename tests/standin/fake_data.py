"""Settable chain/graph/channel data behind the stand-in's RPC methods (CLN shapes, §5)."""
import hashlib
import itertools
import threading
import time

# What the stand-in claims as its features (hex, as CLN prints them).
INIT_FEATURES = "08a0800a8a59a1"
NODE_FEATURES = "88a0800a8a59a1"
CHANNEL_TYPE = {"bits": [12, 22], "names": ["static_remotekey/even", "anchors/even"]}


def _h(*parts) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()


class Channel:
    """One channel, shared by both endpoint nodes; each sees it from its side."""

    def __init__(self, opener, peer, capacity_sat, opener_balance_msat, scid, txid, outnum,
                 private=False, state="CHANNELD_NORMAL"):
        self.ends = (opener, peer)          # node ids
        self.opener = opener
        self.capacity_msat = capacity_sat * 1000
        self.balance = {opener: opener_balance_msat, peer: self.capacity_msat - opener_balance_msat}
        self.scid = scid
        self.funding_txid = txid
        self.funding_outnum = outnum
        # CLN v1 channel id: funding txid xor'ed with the output index.
        cid = bytearray(bytes.fromhex(txid))
        cid[-2] ^= outnum >> 8
        cid[-1] ^= outnum & 0xFF
        self.channel_id = cid.hex()
        self.private = private
        self.state = state
        self.number = 0                     # the scid's tx index
        self.mined_at = None                # the funding transaction's block (fake data: at once)
        self.announced = False              # public channels: at 6 confirmations
        self.fees = {n: {"base": 1000, "ppm": 10, "htlcmin": 0, "htlcmax": self.capacity_msat}
                     for n in self.ends}

    def other(self, me):
        return self.ends[1] if self.ends[0] == me else self.ends[0]

    def direction(self, me):
        return 0 if me < self.other(me) else 1

    def graph_entries(self, now):
        """listchannels shape: one entry per direction."""
        out = []
        for src in self.ends:
            f = self.fees[src]
            out.append({"source": src, "destination": self.other(src), "short_channel_id": self.scid,
                        "direction": self.direction(src), "public": not self.private,
                        "amount_msat": self.capacity_msat, "message_flags": 1, "channel_flags": self.direction(src),
                        "active": self.state == "CHANNELD_NORMAL", "last_update": int(now),
                        "base_fee_millisatoshi": f["base"], "fee_per_millionth": f["ppm"], "delay": 6,
                        "htlc_minimum_msat": f["htlcmin"], "htlc_maximum_msat": f["htlcmax"], "features": ""})
        return out


class FakeData:
    """Per-node settable data. Tests reach it as `node.standin.data`."""

    def __init__(self, node_id):
        self.node_id = node_id
        self.lock = threading.RLock()
        self.blockheight = 110
        self.outputs = []            # listfunds.outputs
        self.channels = []           # Channel objects we are an end of
        self.graph_nodes = {}        # nodeid -> listnodes entry
        self.graph_channels = {}     # (scid, direction) -> listchannels entry
        # source -> {(scid, direction)}: lightningd answers `listchannels source=` from an
        # index too, not by scanning every channel.
        self.graph_by_source = {}
        self.forwards = []           # listforwards entries (plus payment_hash, kept for forward_event)
        self.fees_collected_msat = 0
        self.feerates_perkw = {"opening": 7500, "mutual_close": 3750, "unilateral_close": 11000,
                               "unilateral_anchor_close": 3750, "penalty": 7500, "splice": 7500,
                               "min_acceptable": 1875, "max_acceptable": 150000, "floor": 253}
        self._counter = itertools.count(1)

    # ---- on-chain funds ----------------------------------------------
    def add_funds(self, amount_sat, status="confirmed", reserved=False) -> dict:
        with self.lock:
            n = next(self._counter)
            out = {"txid": _h(self.node_id, "utxo", n), "output": 0, "amount_msat": int(amount_sat) * 1000,
                   "scriptpubkey": "0014" + _h("spk", self.node_id, n)[:40],
                   "address": "bcrt1q" + _h("addr", self.node_id, n)[:38], "status": status,
                   "reserved": reserved, "blockheight": self.blockheight}
            self.outputs.append(out)
            return out

    def spendable_outputs(self):
        return [o for o in self.outputs if o["status"] == "confirmed" and not o["reserved"]]

    def new_txid(self, what) -> str:
        return _h(self.node_id, what, next(self._counter))

    # ---- fees and graph ----------------------------------------------
    def set_feerates(self, **perkw):
        unknown = set(perkw) - set(self.feerates_perkw)
        if unknown:
            raise KeyError("unknown feerate names: %s" % sorted(unknown))
        with self.lock:
            self.feerates_perkw.update(perkw)

    def add_graph_node(self, nodeid, alias=None, color="023456", addresses=None, announced=True):
        """A node in this node's view of the public graph (listnodes)."""
        entry = {"nodeid": nodeid}
        if announced:
            entry.update({"last_timestamp": int(time.time()), "alias": alias or nodeid[:12], "color": color,
                          "features": NODE_FEATURES, "addresses": list(addresses or [])})
        with self.lock:
            self.graph_nodes[nodeid] = entry
        return entry

    def add_graph_channel(self, channel: Channel):
        self.add_graph_entries(channel.graph_entries(time.time()))

    def add_graph_entries(self, entries):
        """listchannels entries (one per direction), e.g. a synthetic public graph."""
        with self.lock:
            for e in entries:
                key = (e["short_channel_id"], e["direction"])
                self.graph_channels[key] = e
                self.graph_by_source.setdefault(e["source"], {})[key] = None

    def add_forward(self, **fields) -> dict:
        """Append a forward; returns the full record (listforwards fields + payment_hash)."""
        with self.lock:
            idx = len(self.forwards) + 1
            now = time.time()
            fwd = {"created_index": idx, "updated_index": idx, "in_channel": fields.pop("in_channel"),
                   "in_htlc_id": fields.pop("in_htlc_id", idx), "in_msat": int(fields.pop("in_msat")),
                   "status": fields.pop("status", "settled"), "style": fields.pop("style", "tlv"),
                   "received_time": fields.pop("received_time", now),
                   "payment_hash": fields.pop("payment_hash", _h(self.node_id, "payment", idx))}
            out_msat = fields.pop("out_msat", None)
            out_channel = fields.pop("out_channel", None)
            if out_channel is not None:
                fwd["out_channel"] = out_channel
                fwd["out_htlc_id"] = fields.pop("out_htlc_id", idx)
            if out_msat is not None:
                fwd["out_msat"] = int(out_msat)
                fwd["fee_msat"] = fwd["in_msat"] - fwd["out_msat"]
            if fwd["status"] in ("settled", "failed", "local_failed"):
                fwd["resolved_time"] = fields.pop("resolved_time", now)
            if fwd["status"] == "local_failed":
                fwd["failcode"] = fields.pop("failcode", 16392)
                fwd["failreason"] = fields.pop("failreason", "WIRE_PERMANENT_CHANNEL_FAILURE")
            if fields:
                raise KeyError("unknown forward fields: %s" % sorted(fields))
            if fwd["status"] == "settled" and "fee_msat" in fwd:
                self.fees_collected_msat += fwd["fee_msat"]
            self.forwards.append(fwd)
            return dict(fwd)
