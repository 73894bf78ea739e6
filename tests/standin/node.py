"""A stand-in lightningd node: its key, lightning-dir, RPC socket, plugins, hooks and notifications."""
import collections
import itertools
import json
import os
import traceback

from pyln.client import LightningRpc

from . import methods
from . import params as P
from .fake_data import FakeData
from .keys import NodeKey
from .lifecycle import FEATURE_SET, Lifecycle, StartupError  # noqa: F401 (StartupError re-exported)
from .logbook import Fault, LogBook, LogLine, NodeFault  # noqa: F401 (re-exported)
from .manifest import hook_filters, hook_names
from .params import RpcFail
from .plugin_host import PluginDied


class StandinRpc(LightningRpc):
    """A real pyln LightningRpc on the node's socket that first raises any unexpected fault."""

    def __init__(self, path, node):
        super().__init__(path)
        self.caller_name = "cli"  # ids look like lightning-cli's: cli:<method>#<n>
        self._standin = node

    def call(self, method, payload=None, cmdprefix=None, filter=None):
        self._standin.check_faults()
        return super().call(method, payload, cmdprefix=cmdprefix, filter=filter)


def _err(rid, code, message):
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}


class Node(LogBook, Lifecycle):
    def __init__(self, name, base_dir, plugins=(), options=None, seed=None, network=None, port=9735,
                 startup_timeout=120.0, shutdown_timeout=30.0):
        self.name = name
        self.alias = name
        self.key = NodeKey.from_seed(seed if seed is not None else name)
        self.id = self.key.node_id
        self.lightning_dir = os.path.join(base_dir, name)
        self.network_dir = os.path.join(self.lightning_dir, "regtest")
        self.rpc_path = os.path.join(self.network_dir, "lightning-rpc")
        self.plugin_paths = [os.path.abspath(p) for p in plugins]
        self.options = dict(options or {})
        self.network = network
        self.port = port
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self.data = FakeData(self.id)
        self.hosts = []
        self._init_logbook()
        self.stop_times = {}
        self.running = False
        self.server = None
        self._ids = itertools.count(1)
        self._rpc = None
        self.rpc_log = collections.deque(maxlen=2000)  # (id, method) of every request the socket got
        self.datastore = {}  # lightningd's datastore; on the Node so it survives restarts

    def __repr__(self):
        return "<Node %s %s>" % (self.name, self.id[:12])

    @property
    def standin(self):
        """Stand-in-only controls (fake data, faults, chaos) live on the node itself."""
        return self

    @property
    def rpc(self):
        if self._rpc is None:
            self._rpc = StandinRpc(self.rpc_path, self)
        return self._rpc

    # ---- ids, routing --------------------------------------------------
    def next_request_id(self, method, prefix=None):
        base = "cln:%s#%d" % (method, next(self._ids))
        return "%s/%s" % (prefix, base) if prefix else base

    def find_host(self, name, states=("init", "active")):
        for h in reversed(self.hosts):
            if (name in (h.name, h.path)) and h.state in states:
                return h
        return None

    def _method_owner(self, method):
        for h in self.hosts:
            if h.state in ("init", "active") and h.manifest and \
                    any(m["name"] == method for m in h.manifest.get("rpcmethods", [])):
                return h
        return None

    def all_method_names(self):
        names = set(methods.BUILTINS)
        for h in self.hosts:
            if h.state in ("init", "active") and h.manifest:
                names.update(m["name"] for m in h.manifest.get("rpcmethods", []))
        return names

    def handle_rpc(self, req, send_notification):
        """One JSON-RPC request from the socket -> the response object (jsonrpc.c parse_request)."""
        if not isinstance(req, dict):
            return _err(None, P.INVALID_REQUEST, "Expected {} for json command")
        self.rpc_log.append((req.get("id"), req.get("method")))
        if "id" not in req:
            return _err(None, P.INVALID_REQUEST, "No id")
        rid = req["id"]
        if isinstance(rid, (dict, list)):
            return _err(None, P.INVALID_REQUEST, "Expected string/primitive for id")
        if req.get("jsonrpc") != "2.0":
            return _err(None, P.INVALID_REQUEST, 'jsonrpc: "2.0" must be specified in the request')
        method = req.get("method")
        if method is None or "params" not in req:
            return _err(rid, P.INVALID_REQUEST, "No params" if method is not None else "No method")
        if not isinstance(method, str):
            return _err(rid, P.INVALID_REQUEST, "Expected string for method")
        host = self._method_owner(method)
        if host is not None:
            return self._passthrough(host, req, send_notification)
        fn = methods.BUILTINS.get(method)
        if fn is None:
            return _err(rid, P.METHOD_NOT_FOUND, "Unknown command '%s'" % method)
        try:
            result = fn(self, req["params"])
        except RpcFail as e:
            return {"jsonrpc": "2.0", "id": rid, "error": e.error()}
        except Exception as e:  # a bug in the stand-in itself: answer, and fail the test
            self.add_fault("standin-error", None, "%s crashed: %s" % (method, traceback.format_exc()))
            return _err(rid, P.LIGHTNINGD, "stand-in error in %s: %s" % (method, e))
        return {"jsonrpc": "2.0", "id": rid, "result": result}

    def _passthrough(self, host, req, send_notification):
        rid = req["id"]
        prefix = rid if isinstance(rid, str) else json.dumps(rid)
        if isinstance(rid, str) and ('"' in rid or "\\" in rid):
            prefix = "weird-id"  # lightningd's word for an id it would have to escape

        def on_notify(msg):
            send_notification(dict(msg, params=dict(msg["params"], id=rid)))

        try:
            resp = host.call(req["method"], None, prefix=prefix, on_notify=on_notify, request=req)
        except PluginDied:
            return _err(rid, P.PLUGIN_TERMINATED, "Plugin terminated before replying to RPC call.")
        return dict(resp, id=rid)

    # ---- hooks and notifications -------------------------------------
    def call_hook(self, name, params, validate, mtype=None):
        """Chained, in registration order, no timeout; stops at the first verdict `validate` returns."""
        for h in [h for h in self.hosts if h.state == "active" and name in hook_names(h.manifest)]:
            filters = hook_filters(h.manifest, name)
            if mtype is not None and filters is not None and mtype not in filters:
                continue
            try:
                resp = h.call(name, params)
            except PluginDied:
                continue  # the chain goes on without a plugin that died mid-hook
            if "result" not in resp:
                self.add_fault("hook-error", h.name, "Plugin %s for %s returned non-result response %s"
                               % (h.name, name, json.dumps(resp)[:300]))
                continue
            verdict = validate(h, resp["result"])
            if verdict is not None:
                return verdict
        return None

    def receive_custommsg(self, sender_id, payload):
        """connectd handed us a custom message: notification first, then the hook chain."""
        self.notify("custommsg", {"peer_id": sender_id, "payload": payload})

        def validate(h, result):
            if not (isinstance(result, dict) and result.get("result") == "continue"):
                self.add_fault("hook-error", h.name, "Plugin returned an invalid response to the custommsg hook: %s"
                               % json.dumps(result)[:300])
            return None

        self.call_hook("custommsg", {"peer_id": sender_id, "payload": payload}, validate,
                       mtype=int(payload[:4], 16))

    def peer_connected_hook(self, peer_id, direction, addr):
        """Returns None (continue) or the disconnect error message."""

        def validate(h, result):
            verdict = result.get("result") if isinstance(result, dict) else None
            if verdict == "continue":
                return None
            if verdict == "disconnect":
                return ("disconnect", result.get("error_message", ""))
            self.add_fault("hook-error", h.name, "Plugin returned an invalid response to the peer_connected hook: %s"
                           % json.dumps(result)[:300])
            return None

        verdict = self.call_hook("peer_connected", {"peer": {"id": peer_id, "direction": direction, "addr": addr,
                                                             "features": FEATURE_SET["init"]}}, validate)
        return verdict[1] if verdict else None

    def notify(self, topic, payload):
        for h in list(self.hosts):
            if h.subscribed(topic):
                h.notify(topic, {topic: payload})

    def notify_custom(self, origin, topic, params):
        for h in list(self.hosts):
            if h.subscribed(topic):
                h.notify(topic, params, origin=origin)

    def inject_forward(self, **fields):
        """Record a forward (listforwards) and send forward_event to subscribers."""
        rec = self.data.add_forward(**fields)
        self.notify("forward_event", rec)
        return rec

    # ---- peers (the network owns the links) --------------------------
    def known_peers(self):
        ids = {c.other(self.id) for c in self.data.channels}
        if self.network is not None:
            ids.update(self.network.peers_of(self.id))
        return sorted(ids)

    def custom_even_types(self):
        """Even message types some plugin declared in `custommessages` (accepted, not warned about)."""
        return {t for h in self.hosts if h.state == "active" for t in h.manifest.get("custommessages", [])}

    def peer_state(self, peer_id):
        return self.network.link_state(self.id, peer_id) if self.network is not None else None

