"""Starting and stopping a node's plugins the way lightningd does (§1.1, §1.2, §1.5, §1.7)."""
import json
import os
import time

from . import methods
from . import params as P
from .manifest import ManifestError, OptionValueError, build_init_options, validate_manifest
from .params import RpcFail
from .plugin_host import PluginDied, PluginHost
from .rpc_server import RpcServer

SHUTDOWN_RPC_GAP = 0.15  # seconds between refusing JSON-RPC and the shutdown notification
LINGER_GRACE = 2.0  # seconds a plugin gets to exit once its stdin is closed
FEATURE_SET = {"init": "08a0800a8a59a1", "node": "88a0800a8a59a1", "channel": "", "invoice": "02000002024100",
               "bolt12_offer": "", "bolt12_invreq": "", "bolt12_invoice": "", "channel_type": ""}


class StartupError(RuntimeError):
    """lightningd would refuse to start (bad option value, plugin died or hung at startup)."""


class Lifecycle:
    """Mixed into Node: start/stop/restart, `plugin start|stop`, setconfig, kills."""

    def start(self):
        if self.running:
            raise RuntimeError("%s is already running" % self.name)
        os.makedirs(self.network_dir, exist_ok=True)
        self.server = RpcServer(self.rpc_path, self.handle_rpc, name=self.name + "-rpc")
        self.server.handler_log = lambda msg: self.log("debug", "jsonrpc", msg)
        self.server.start()
        self.running = True
        self.hosts = [PluginHost(self, p) for p in self.plugin_paths]
        self.log("info", "lightningd", "Server started with public key %s" % self.id)
        try:
            self._start_plugins(self.hosts, self.options, startup=True)
        except StartupError:
            self._teardown_hosts()
            raise
        if self.network is not None:
            self.network.node_started(self)

    def _start_plugins(self, hosts, options, startup):
        """getmanifest to all, validate, then init to all (lightningd sends init to every
        plugin before waiting, so one plugin's init may call another's method)."""
        for h in hosts:
            try:
                h.spawn()
            except PermissionError as e:
                raise StartupError(str(e))
        taken_opts = {o["name"] for h in self.hosts if h not in hosts and h.state in ("init", "active")
                      for o in h.manifest["options"]}
        taken_methods = self.all_method_names()
        pend = [(h, h.request("getmanifest", {"allow-deprecated-apis": False})) for h in hosts]
        for h, p in pend:
            m = self._await(h, p, "getmanifest").get("result")
            if isinstance(m, dict) and isinstance(m.get("disable"), str):
                h.manifest = m
                self._disable(h, m["disable"])
                continue
            try:
                validate_manifest(m, taken_opts, taken_methods)
                if not startup and not m.get("dynamic", False):
                    raise ManifestError("Not a dynamic plugin")
            except ManifestError as e:
                h.kill_for(str(e), fault=startup)  # at runtime the `plugin start` caller gets the error
                continue
            h.manifest, h.state = m, "init"
            taken_opts.update(o["name"] for o in m["options"])
            taken_methods.update(x["name"] for x in m["rpcmethods"])
        ready = [h for h in hosts if h.state == "init"]
        declared = {o["name"] for h in ready for o in h.manifest["options"]}
        unknown = sorted(set(options) - declared)
        if unknown:
            raise StartupError("unrecognized option '--%s'" % unknown[0])
        for h in ready:
            try:
                h.init_options = build_init_options(h.manifest["options"], options)
            except OptionValueError as e:
                raise StartupError(str(e))
        config = {"lightning-dir": self.network_dir, "rpc-file": "lightning-rpc", "startup": startup,
                  "network": "regtest", "feature_set": FEATURE_SET}
        pend = [(h, h.request("init", {"options": h.init_options, "configuration": config})) for h in ready]
        for h, p in pend:
            resp = self._await(h, p, "init")
            result = resp.get("result")
            if isinstance(result, dict) and "disable" in result:
                self._disable(h, result["disable"])
                continue
            if "error" in resp:
                # lightningd carries on: an error reply still completes init (plugin.c:2066-2095).
                self.log("unusual", h.log_prefix, "init returned an error: %s" % json.dumps(resp["error"])[:300])
            h.state = "active"

    def _await(self, h, pending, what):
        try:
            return h.wait(pending, self.startup_timeout)
        except TimeoutError:
            h.kill("timed out before replying to %s" % what)
            raise StartupError("%s: timed out before replying to %s" % (h.name, what))
        except PluginDied:
            raise StartupError("%s exited before replying to %s (rc=%s); stderr:\n%s"
                               % (h.name, what, h.returncode, h.stderr_tail()))

    def _disable(self, h, reason):
        h.state, h.reason = "disabled", reason
        self.log("info", h.log_prefix, "disabled itself: %s" % reason)
        h.kill()

    def _teardown_hosts(self):
        for h in self.hosts:
            h.kill()
        for h in self.hosts:
            h.wait_exit(5.0)
            h.join_threads()
        if self.server:
            self.server.stop()
        self.running = False

    def start_plugin(self, path, options):
        """`plugin start`: errors come back as RpcFail, as lightningd answers them."""
        path = os.path.abspath(path)
        if self.find_host(path):
            raise RpcFail(P.INVALID_PARAMS, "%s: already registered" % path)
        h = PluginHost(self, path)
        self.hosts.append(h)
        try:
            self._start_plugins([h], options, startup=False)
        except StartupError as e:
            h.kill()
            raise RpcFail(P.PLUGIN_ERROR, "%s: %s" % (path, e))
        if h.state != "active":
            raise RpcFail(P.PLUGIN_ERROR, "%s: %s" % (path, h.reason or h.state))

    def stop_plugin(self, name):
        """`plugin stop`: shutdown if subscribed, close pipes, then SIGKILL."""
        h = self.find_host(name)
        if h is None:
            raise RpcFail(P.INVALID_PARAMS, "Could not find plugin %s" % name)
        if not h.manifest.get("dynamic", False):
            raise RpcFail(P.INVALID_PARAMS, "%s cannot be managed when lightningd is up" % h.name)
        self._shutdown_hosts([h], self.shutdown_timeout)
        h.state = "stopped"
        return h.name

    def kill_plugin(self, name):
        """SIGKILL a plugin on purpose (not a fault); waits until it is gone."""
        h = self.find_host(name, states=("init", "active"))
        if h is None:
            raise KeyError("%s runs no plugin %r" % (self.name, name))
        h.kill()
        if not h.wait_exit(5.0):
            raise TimeoutError("%s did not die after SIGKILL" % name)
        return h.pid

    def plugin_setconfig(self, h, opt, typed, sent):
        params = {"config": opt["name"]}
        if sent is not None:
            params["val"] = sent
        try:
            resp = h.call("setconfig", params)
        except PluginDied:
            raise RpcFail(P.PLUGIN_TERMINATED, "Plugin terminated before replying to RPC call.")
        if "error" in resp:
            # lightningd passes the plugin's error through; the value stays as it was.
            raise RpcFail(resp["error"].get("code", P.INVALID_PARAMS), resp["error"].get("message", ""),
                          resp["error"].get("data"))
        h.dynamic_values[opt["name"]] = typed
        return {"config": methods.BUILTINS["listconfigs"](self, {"config": opt["name"]})["configs"][opt["name"]]
                | {"config": opt["name"]}}

    def _shutdown_hosts(self, hosts, timeout):
        """Returns {plugin name: seconds from shutdown (or pipe close) to exit}."""
        t0 = time.monotonic()
        subscribed = []
        for h in hosts:
            h.expected_exit = True
            if h.alive and h.subscribed("shutdown"):
                h.notify("shutdown", {"shutdown": {}})
                subscribed.append(h)
            else:
                h.close_stdin()
        for h in subscribed:
            if not h.wait_exit(max(0.0, t0 + timeout - time.monotonic())):
                self.log("unusual", h.log_prefix, "did not exit within %ss of shutdown" % timeout)
                h.close_stdin()
        for h in hosts:
            if h.alive and not h.wait_exit(LINGER_GRACE):
                self.add_fault("plugin-lingered", h.name, "still running %ss after its stdin closed (it would "
                               "outlive lightningd); killed" % LINGER_GRACE)
                h.kill()
        times = {}
        for h in hosts:
            h.wait_exit(5.0)
            h.join_threads()
            if h.exit_time is not None:
                times[h.name] = h.exit_time - t0
        return times

    def stop(self, timeout=None, rpc_gap=SHUTDOWN_RPC_GAP):
        """Graceful stop as lightningd shuts down; returns {plugin: seconds to exit}."""
        if not self.running:
            return dict(self.stop_times)
        self.running = False
        self.server.stop_listening()  # plugins' RPC calls are refused from here on
        # lightningd stops connectd and the channel daemons before it tells plugins: for that
        # long a plugin still runs, and its RPC calls are refused.
        time.sleep(rpc_gap)
        live = [h for h in self.hosts if h.alive]
        self.stop_times = self._shutdown_hosts(live, self.shutdown_timeout if timeout is None else timeout)
        if self.network is not None:
            self.network.node_stopped(self)
        self.server.stop()
        self.log("info", "lightningd", "stopped")
        return dict(self.stop_times)

    def restart(self):
        self.stop()
        self.start()

    def on_plugin_exit(self, host):
        with self._cond:
            self._cond.notify_all()

    def kill_all(self):
        """Teardown path: no shutdown courtesy, every plugin process is SIGKILLed."""
        for h in self.hosts:
            h.kill()
        if self.running:
            self.running = False
            if self.network is not None:
                self.network.node_stopped(self)
        self._teardown_hosts()
