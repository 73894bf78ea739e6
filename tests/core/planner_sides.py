"""For planner tests: a public graph served as lightningd serves it (listchannels
source=, listnodes id=, feerates style=perkw) with fault modes, members' HiveMap states
written as gossip would leave them, and a hive of one to three GovSides (real SQLite,
the bridge's real pool, CLBoss' model)."""
from __future__ import annotations

from pyln.client import RpcError

from handlers.hivemap.rules import fleet_hash
from handlers.planner import cycle
from storage import hivemap
from storage import planner as store

BIG = 100_000_000


def node(i: int) -> str:
    return "03" + "%064x" % (0x1000 + i)


class Graph:
    """Channels by their two ends; `mode`: ok | fail | hang | garbage."""

    def __init__(self):
        self.channels: list[tuple[str, str, int]] = []
        self.unannounced: set[str] = set()
        self.feerate = 5_000
        self.mode = "ok"
        self.reads: list[tuple[str, dict]] = []

    def channel(self, a: str, b: str, sats: int) -> "Graph":
        self.channels.append((a, b, sats))
        return self

    def answer(self, lightning, method, params):
        self.reads.append((method, dict(params)))
        if self.mode == "fail":
            raise RpcError(method, params, {"code": -1, "message": "gossipd is not answering"})
        if self.mode == "hang":
            lightning._hang(method, params)
        if method == "feerates":
            return {"perkw": {"opening": self.feerate, "min_acceptable": 253}}
        if method == "listnodes":
            n = params["id"]
            known = any(n in (a, b) for a, b, _ in self.channels)
            entry = {"nodeid": n} if n in self.unannounced else {
                "nodeid": n, "last_timestamp": 1, "alias": n[:8], "addresses": []}
            return {"nodes": [entry] if known else []}
        src = params["source"]
        out = []
        for i, (a, b, sats) in enumerate(self.channels):
            for s, d in ((a, b), (b, a)):
                if s == src:
                    out.append({"source": s, "destination": d, "short_channel_id": f"1x{i}x0",
                                "amount_msat": sats * 1000, "public": True, "active": True})
        if self.mode == "garbage":
            for c in out:
                del c["amount_msat"]
        return {"channels": out}


def put_state(side, peer_id, *, available_sat=BIG, peers=None, timestamp=None, version=1,
              **extra) -> None:
    """A member's HiveMap state as gossip stores it (the planner does not check
    signatures: the gossip did, when it stored the state)."""
    state = {"peer_id": peer_id, "version": version,
             "timestamp": side.ctx.now() if timestamp is None else timestamp,
             "capacity_sat": sum((peers or {}).values()), "available_sat": available_sat,
             "fee_policy": {"base_msat": 0, "ppm": 0},
             "peers": [{"peer_id": p, "capacity_sat": c} for p, c in sorted((peers or {}).items())],
             **extra}
    if available_sat is None:
        del state["available_sat"]
    with side.db.transaction() as conn:
        assert hivemap.put_if_newer(conn, state, "sig%d" % version, side.clock.now())


def plan_now(side, dry_run=False, settle=True) -> dict:
    """One cycle: the graph read on the bridge's pool, its outcome on the 'worker'. With
    `settle`, a cycle first if the stored plan saw another HiveMap (assignments are acted
    on only when the fleet hash did not change since the previous cycle)."""
    last = store.last_plan(side.db.conn())
    current = fleet_hash([e["state"] for e in hivemap.all_entries(side.db.conn())])
    if settle and not dry_run and (last is None or last[1].get("fleet_hash") != current):
        plan_now(side, settle=False)
    fut = cycle.run(side.ctx, dry_run=dry_run)
    side.settle()
    assert fut.done(), "the graph read neither answered nor hung"
    return fut.result()
