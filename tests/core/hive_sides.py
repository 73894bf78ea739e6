"""For handshake handler tests: whole nodes minus the network. Each side has its own real
SQLite database, dispatcher and secp256k1 node key (signmessage/checkmessage as
lightningd computes them, from the stand-in's key code); messages travel by taking them
out of one side's outbox and handing them to the other side's handlers."""
from __future__ import annotations

from pyln.client import RpcError

from handlers.frame import config as cfg
from handlers import router
from handlers.frame.context import Context
from handlers.frame.dispatch import Dispatcher
from handlers.hive import (COUNCIL_BURST, COUNCIL_RATE, FULL_SYNC_BURST, FULL_SYNC_RATE,
                           HELLO_BURST, HELLO_RATE, JOIN_REFUSAL_BURST, JOIN_REFUSAL_RATE,
                           SYNC_BURST, SYNC_RATE)
from handlers.frame.ratelimit import RateLimiter
from storage import hive as hive_store
from storage import machine_rows, outbox
from storage.db import Database
from tests.standin.keys import NodeKey, SignatureFormatError, recover_pubkey


class KeyOnlyLightning:
    """The RPC methods the handshake handlers call, computed as lightningd does."""

    def __init__(self, seed: str):
        self.key = NodeKey.from_seed(seed)
        self.node_id = self.key.node_id
        self.calls: list[str] = []
        # Settable data behind listpeerchannels, listfunds and listpeers (no id).
        self.channels: list[dict] = []
        self.outputs: list[dict] = []
        self.connected: set[str] = set()
        self.funded: list[str] = []     # peers fundchannel opened a channel to, in order
        self.broken: set[str] = set()   # methods that fail as no caller expects (a fault)

    def call(self, method, params=None):
        params = params or {}
        self.calls.append(method)
        if method in self.broken:
            raise AssertionError(f"{method} is broken in this test")
        if method == "getinfo":
            return {"id": self.node_id}
        if method == "signmessage":
            return self.key.sign_message(params["message"])
        if method == "checkmessage":
            try:
                pub = recover_pubkey(params["message"], params["zbase"])
            except SignatureFormatError as e:
                raise RpcError("checkmessage", params, {"code": -32602, "message": str(e)})
            return {"pubkey": pub, "verified": pub is not None and pub == params["pubkey"]}
        if method == "listpeers":
            if "id" in params:        # the handshake asks about one peer: count it connected
                return {"peers": [{"id": params["id"], "connected": True}]}
            return {"peers": [{"id": p, "connected": True} for p in sorted(self.connected)]}
        if method == "listpeerchannels":
            return {"channels": [c for c in self.channels
                                 if "id" not in params or c.get("peer_id") == params["id"]]}
        if method == "fundchannel":
            # A channel awaiting lockin, as lightningd answers before any confirmation.
            channel_id = "%064x" % (len(self.funded) + 1)
            self.funded.append(params["id"])
            self.channels.append({"peer_id": params["id"], "channel_id": channel_id,
                                  "state": "CHANNELD_AWAITING_LOCKIN"})
            return {"txid": "%064x" % len(self.funded), "channel_id": channel_id}
        if method == "listfunds":
            return {"outputs": list(self.outputs), "channels": []}
        if method == "connect":       # the channel open's executor connects first
            self.connected.add(params["id"])
            return {"id": params["id"], "features": "", "direction": "out",
                    "address": {"type": "ipv4", "address": "127.0.0.1", "port": 9735}}
        raise AssertionError(f"handler called an RPC method this test does not serve: {method}")


class Side:
    def __init__(self, name: str, tmp_path, clock, *, lightning=None, db_path=None,
                 existing: bool = False, **options):
        """`lightning`: the RPC stand-in (a KeyOnlyLightning of `name` by default);
        `db_path`: where the database is (":memory:" for a simulated fleet), by default a
        file in `tmp_path`/`name`; `existing`: the node's folder is already there (a copied
        or crashed node)."""
        d = tmp_path / name
        if db_path is None:
            d.mkdir(exist_ok=existing)
        self.config = cfg.from_init(options, str(d))
        self.db_path = db_path or self.config.db_path
        self.lightning = lightning or KeyOnlyLightning(name)
        self.node_id = self.lightning.node_id
        self._open(clock)

    def restart(self, clock) -> None:
        """A crash and a restart: only what is in SQLite survives (memory, limiters and
        timers are new)."""
        self.db.close()
        self._open(clock)

    def _open(self, clock) -> None:
        self.db = Database(self.db_path)
        self.db.migrate()
        self.dispatcher = Dispatcher(self.db, clock, lambda: self.config)
        self.ctx = Context(db=self.db, dispatcher=self.dispatcher, lightning=self.lightning,
                           clock=clock, config=lambda: self.config,
                           hello_limiter=RateLimiter(clock, HELLO_RATE, HELLO_BURST),
                           join_refusal_limiter=RateLimiter(clock, JOIN_REFUSAL_RATE,
                                                            JOIN_REFUSAL_BURST),
                           sync_limiter=RateLimiter(clock, SYNC_RATE, SYNC_BURST),
                           full_sync_limiter=RateLimiter(clock, FULL_SYNC_RATE,
                                                         FULL_SYNC_BURST),
                           council_limiter=RateLimiter(clock, COUNCIL_RATE, COUNCIL_BURST))

    def receive(self, sender: "Side | str", msg_hex: str) -> None:
        peer = sender if isinstance(sender, str) else sender.node_id
        router.on_message(self.ctx, peer, msg_hex)

    def outgoing(self, to: "Side") -> list[str]:
        """Take (and mark sent) every queued message for `to`."""
        taken = []
        while True:
            rows = [r for r in outbox.due(self.db.conn(), float("inf"), limit=10_000)
                    if r["peer_id"] == to.node_id]
            if not rows:
                return taken
            with self.db.transaction() as c:
                for r in rows:
                    outbox.mark_sent(c, r["seq"], 0.0)
            taken += [r["msg_hex"] for r in rows]

    def snapshot(self) -> tuple:
        """Everything a refused message must leave unchanged."""
        conn = self.db.conn()
        return (hive_store.get_meta(conn), hive_store.members(conn),
                machine_rows.counts(conn), outbox.pending_count(conn))

    def members(self) -> dict:
        return {m["peer_id"]: m["tier"] for m in hive_store.members(self.db.conn())}

    def close(self):
        self.db.close()


def pump(*sides: Side, rounds: int = 10, observe=None) -> None:
    """Deliver queued messages between sides until none are left; `observe(sender,
    receiver, msg_hex)` sees each one first (for counting traffic)."""
    for _ in range(rounds):
        moved = False
        for a in sides:
            for b in sides:
                if a is b:
                    continue
                for msg in a.outgoing(b):
                    if observe is not None:
                        observe(a, b, msg)
                    b.receive(a, msg)
                    moved = True
        if not moved:
            return
    raise AssertionError("messages still flowing after many rounds")


def form_hive(admin: Side, *joiners: Side) -> None:
    """Genesis on `admin`, then each joiner joins with its own ticket; everyone connected."""
    from handlers.membership import handshake
    from handlers.membership import members as membership
    membership.genesis(admin.ctx, "fleet")
    for joiner in joiners:
        ticket = membership.invite(admin.ctx, None, None, None)["ticket"]
        handshake.start_join(joiner.ctx, ticket, None)
        pump(admin, *joiners)
    everyone = (admin, *joiners)
    for s in everyone:
        s.lightning.connected = {o.node_id for o in everyone if o is not s}
    pump(*everyone)
