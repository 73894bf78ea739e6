"""For bridge tests: a node whose lightningd also hosts the companion plugins, modelled by
the same classes the stand-in companion scripts run (tests/standin/companions/*_model.py),
with each companion able to hang, die mid-call, fail or answer garbage. Calls really run
on the bridge's pool threads; their outcomes are delivered to a list that `settle()` runs
on the test's thread (the worker), so the order of events is the test's."""
from __future__ import annotations

import threading

from pyln.client import RpcError

from handlers.bridge import fees
from handlers.bridge.companions import Bridge
from handlers.bridge.pool import CallPool
from hive_sides import KeyOnlyLightning, Side
from tests.standin.companions.clboss_model import Clboss, ModelError
from tests.standin.companions.revenue_model import RevenueOps

REVENUE, CLBOSS = "cl-revenue-ops", "clboss"
PLUGIN_FILES = {REVENUE: "/plugins/cl-revenue-ops.py", CLBOSS: "/usr/bin/clboss"}


class CompanionLightning(KeyOnlyLightning):
    def __init__(self, seed, revenue_version="2.1.0", clboss=True, clock=None):
        super().__init__(seed)
        self.models = {REVENUE: RevenueOps(revenue_version, clock=clock.now) if revenue_version else None,
                       CLBOSS: Clboss() if clboss else None}
        self.files = dict(PLUGIN_FILES)
        self.modes = {REVENUE: "ok", CLBOSS: "ok", "fundchannel": "ok", "connect": "ok"}
        # The public graph (planner_sides.Graph) behind listchannels, listnodes, feerates.
        self.graph = None
        # Peers `listpeers id=` reports not connected, until a `connect` reaches them.
        self.unreachable: set[str] = set()
        self.sent: list[tuple[str, str]] = []          # sendcustommsg (node_id, msg)
        self.connects: list[str] = []
        self.fundings: list[dict] = []
        self.companion_calls: list[tuple[str, dict]] = []
        self.fees: dict[str, tuple[int, int]] = {}     # scid -> (base_msat, ppm)
        self.cond = threading.Condition()
        self.hanging = 0
        self._release = threading.Event()

    def release_hung(self) -> None:
        """Hung calls end as lightningd ends them when their plugin dies: error -4."""
        self._release.set()
        with self.cond:
            self.cond.wait_for(lambda: self.hanging == 0, 5.0)

    def call(self, method, params=None):
        params = params or {}
        if method == "plugin":
            return {"command": "list", "plugins": [
                {"name": self.files[n], "active": True, "dynamic": True}
                for n, m in self.models.items() if m is not None]}
        owner = REVENUE if method.startswith("revenue-") else CLBOSS if method.startswith("clboss-") else None
        if owner is not None:
            return self._companion(owner, method, params)
        if method in ("listchannels", "listnodes", "feerates") and self.graph is not None:
            return self.graph.answer(self, method, params)
        if method == "setchannel":
            return self._setchannel(params)
        if method == "fundchannel":
            return self._fundchannel(params)
        if method == "connect":
            return self._connect(params)
        if method == "listpeers" and params.get("id") in self.unreachable:
            return {"peers": []}
        if method == "sendcustommsg":
            with self.cond:
                self.sent.append((params["node_id"], params["msg"]))
                self.cond.notify_all()
            return {"status": "Message sent to the peer"}
        return super().call(method, params)

    def _companion(self, owner, method, params):
        model = self.models[owner]
        if model is None:
            raise RpcError(method, params, {"code": -32601, "message": f"Unknown command '{method}'"})
        with self.cond:
            self.companion_calls.append((method, params))
        mode = self.modes[owner]
        if mode == "hang":
            self._hang(method, params)
        if mode == "die":
            self.models[owner] = None
            raise RpcError(method, params, {"code": -4, "message": "Plugin terminated before replying to RPC call."})
        if mode == "garbage":
            return "\u00ff garbage"
        if mode == "fail":
            raise RpcError(method, params, {"code": -32600, "message": "told to fail"})
        try:
            if method == "revenue-status":
                return model.status()
            if method == "revenue-policy":
                return model.policy(**params)
            if method == "revenue-rebalance":
                return model.rebalance(**params)
            if method == "clboss-status":
                return model.status()
            if method == "clboss-unmanage":
                return model.unmanage(params["nodeid"], params["tags"])
        except ModelError as e:
            raise RpcError(method, params, {"code": e.code, "message": e.message})
        raise RpcError(method, params, {"code": -32601, "message": f"Unknown command '{method}'"})

    def _hang(self, method, params):
        with self.cond:
            self.hanging += 1
            self.cond.notify_all()
        self._release.wait()
        with self.cond:
            self.hanging -= 1
            self.cond.notify_all()
        # What lightningd answers a call whose plugin died before replying.
        raise RpcError(method, params, {"code": -4, "message": "Plugin terminated before replying to RPC call."})

    def _fundchannel(self, params):
        self.fundings.append(params)
        if self.modes["fundchannel"] == "hang":
            self._hang("fundchannel", params)
        scid = f"9x{len(self.fundings)}x0"
        self.add_channel(params["id"], scid)
        self.channels[-1]["channel_id"] = "cc" * 32
        return {"txid": "ab" * 32, "channel_id": "cc" * 32, "outnum": 0}

    def _connect(self, params):
        """lightningd's connect: `id` or `id@host:port`; hangs or fails when told to."""
        node = params["id"].split("@")[0]
        self.connects.append(params["id"])
        if self.modes["connect"] == "hang":
            self._hang("connect", params)
        if self.modes["connect"] == "fail":
            raise RpcError("connect", params, {"code": 401, "message": "All addresses failed"})
        self.unreachable.discard(node)
        return {"id": node, "features": "", "direction": "out", "address": {}}

    def _setchannel(self, params):
        chans = [c for c in self.channels if params["id"] in (c["peer_id"], c.get("short_channel_id"))]
        out = []
        for c in chans:
            local = c.setdefault("updates", {}).setdefault("local", {})
            local["fee_base_msat"] = int(params.get("feebase", local.get("fee_base_msat", 1000)))
            local["fee_proportional_millionths"] = int(params.get("feeppm", local.get("fee_proportional_millionths", 10)))
            out.append({"peer_id": c["peer_id"], "short_channel_id": c["short_channel_id"],
                        "fee_base_msat": local["fee_base_msat"],
                        "fee_proportional_millionths": local["fee_proportional_millionths"]})
        return {"channels": out}

    def add_channel(self, peer_id, scid, base=1000, ppm=10):
        self.channels.append({"peer_id": peer_id, "short_channel_id": scid, "state": "CHANNELD_NORMAL",
                              "spendable_msat": 1_000_000_000,
                              "updates": {"local": {"fee_base_msat": base, "fee_proportional_millionths": ppm}}})

    def local_fees(self, scid):
        [c] = [c for c in self.channels if c["short_channel_id"] == scid]
        local = c["updates"]["local"]
        return local["fee_base_msat"], local["fee_proportional_millionths"]


class BridgeSide(Side):
    def __init__(self, name, tmp_path, clock, revenue_version="2.1.0", clboss=True, **options):
        super().__init__(name, tmp_path, clock, **options)
        self.clock = clock
        self.lightning = CompanionLightning(name, revenue_version, clboss, clock)
        self.node_id = self.lightning.node_id
        self.ctx.lightning = self.lightning
        self.inbox: list = []
        self.pool = self.bridge = None
        self.new_bridge()
        self.dispatcher.observers.append(lambda o: fees.on_member_outcome(self.ctx, o))

    def new_bridge(self) -> None:
        """What a restart builds: a new pool and bridge over the same database."""
        if self.pool is not None:
            self.pool.shutdown()
        self.pool = CallPool(self.lightning, self._deliver)
        self.bridge = self.ctx.bridge = Bridge(self.pool)
        fees.install(self.bridge)

    def _deliver(self, fn):
        with self.lightning.cond:
            self.inbox.append(fn)
            self.lightning.cond.notify_all()

    def settle(self, timeout=10.0) -> None:
        """Run every delivered outcome until all calls still in flight are hung ones."""
        cond = self.lightning.cond
        while True:
            with cond:
                ok = cond.wait_for(lambda: self.inbox or
                                   len(self.pool.inflight) <= self.lightning.hanging, timeout)
                assert ok, "a bridge call neither answered nor hung"
                batch, self.inbox[:] = list(self.inbox), []
            if not batch:
                return
            for fn in batch:
                fn()

    def tick(self) -> None:
        """The engine's tick for the parts the bridge uses: deadlines, then the bridge."""
        self.dispatcher.fire_due()
        self.bridge.on_tick(self.ctx)
        self.settle()

    def close(self):
        self.lightning.release_hung()
        self.pool.shutdown()
        super().close()
