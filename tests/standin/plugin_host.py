"""Spawning and driving one plugin process the way lightningd does (protocol doc §1)."""
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

from .jsonstream import InvalidJSON, JSONStream

LIGHTNINGD_VERSION = "v26.06.6"
# lightningd's log levels (common/status_levels.c); warn/error are aliases.
LOG_LEVELS = {"trace": "trace", "debug": "debug", "info": "info", "unusual": "unusual",
              "warn": "unusual", "broken": "broken", "error": "broken"}


class PluginDied(Exception):
    """The plugin exited (or was killed) before answering."""


class _Pending:
    __slots__ = ("event", "response", "on_notify", "rid", "method")

    def __init__(self, on_notify):
        self.event = threading.Event()
        self.response = None
        self.on_notify = on_notify


class PluginHost:
    """One plugin process. States: new, manifest, init, active, disabled, killed, exited, stopped."""

    def __init__(self, node, path):
        self.node = node
        self.path = os.path.abspath(path)
        self.name = os.path.basename(path)
        self.state = "new"
        self.manifest = None
        self.reason = None          # why it was disabled or killed
        self.proc = None
        self.returncode = None
        self.expected_exit = False  # a death we caused or asked for is not a fault
        self.dynamic_values = {}    # option values changed by setconfig
        self.init_options = {}
        self.exit_time = None
        self.notifications_sent = []  # topics written to this plugin, in order
        self.requests_sent = []       # methods of the requests written to it, in order
        self._lock = threading.Lock()
        self._pending = {}
        self._outq = queue.Queue()
        self._exited = threading.Event()
        self._threads = []
        self._stderr = None

    # ---- process -------------------------------------------------------
    @property
    def log_prefix(self):
        return "plugin-" + self.name

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def spawn(self):
        if not os.access(self.path, os.X_OK):
            # lightningd execs the file itself (its #! line picks the interpreter): no
            # executable bit, no plugin.
            self._exited.set()
            raise PermissionError("error starting plugin '%s': opening pipe: Permission denied" % self.path)
        env = dict(os.environ, LIGHTNINGD_PLUGIN="1", LIGHTNINGD_VERSION=LIGHTNINGD_VERSION)
        # stderr is inherited by real plugins; keep it in a file so failures can quote it.
        self._stderr = open(os.path.join(self.node.network_dir, "stderr-%s.log" % self.name), "ab")
        self.proc = subprocess.Popen([sys.executable, self.path], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._stderr,
                                     cwd=self.node.network_dir, env=env)
        self.state = "manifest"
        for target in (self._reader, self._writer):
            t = threading.Thread(target=target, name="%s-%s-%s" % (self.node.name, self.name, target.__name__),
                                 daemon=True)
            t.start()
            self._threads.append(t)

    def stderr_tail(self, n=2000) -> str:
        try:
            with open(self._stderr.name, "rb") as f:
                return f.read()[-n:].decode("utf-8", "replace")
        except OSError as e:
            return "(stderr unreadable: %s)" % e

    @property
    def alive(self) -> bool:
        return self.proc is not None and not self._exited.is_set()

    def wait_exit(self, timeout) -> bool:
        return self._exited.wait(timeout)

    def kill(self, reason=None, expected=True):
        """SIGKILL, as plugin_kill does. `expected` deaths are not faults."""
        with self._lock:
            if expected:
                self.expected_exit = True
            if reason and self.state not in ("disabled",):
                self.state, self.reason = "killed", reason
        if self.alive:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # already gone; the reader thread records the exit

    def kill_for(self, reason, fault=True):
        """lightningd kills plugins that break the protocol: a fault for the test."""
        self.node.log("unusual", self.log_prefix, "Killing plugin: " + reason)
        if fault:
            self.node.add_fault("plugin-killed", self.name, reason)
        self.kill(reason)

    def close_stdin(self):
        self._outq.put(None)

    def join_threads(self, timeout=5.0):
        for t in self._threads:
            t.join(timeout)
        if self._stderr:
            self._stderr.close()

    # ---- writing -------------------------------------------------------
    def _writer(self):
        while True:
            item = self._outq.get()
            try:
                if item is None:
                    self.proc.stdin.close()
                    return
                self.proc.stdin.write(item)
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError, OSError) as e:
                # The plugin is gone; the reader thread reports the death.
                self.node.log("debug", self.log_prefix, "write failed: %s" % e)
                return

    def _send(self, obj):
        # Compact JSON + "\n\n": pyln splits on the blank line (jsonrpc.c:1598-1605).
        self._outq.put((json.dumps(obj, separators=(",", ":")) + "\n\n").encode("utf-8"))

    def notify(self, method, params, origin=None):
        with self._lock:
            self.notifications_sent.append(method)
        obj = {"jsonrpc": "2.0", "method": method, "params": params}
        if origin is not None:
            obj["origin"] = origin
        self._send(obj)

    def subscribed(self, topic) -> bool:
        """Only INIT_COMPLETE plugins that subscribed (or `*`, which excludes log) get a topic."""
        if self.state != "active":
            return False
        subs = self.manifest.get("subscriptions", [])
        return topic in subs or ("*" in subs and topic != "log")

    def request(self, method, params, prefix=None, on_notify=None, request=None):
        """Send a request; returns a handle for wait(). `request` (passthrough) is
        forwarded verbatim except for the id."""
        rid = self.node.next_request_id(method, prefix)
        obj = dict(request) if request is not None else {"jsonrpc": "2.0", "method": method, "params": params}
        obj["id"] = rid
        pending = _Pending(on_notify)
        pending.method = method
        with self._lock:
            if self._exited.is_set():
                raise PluginDied("%s is not running" % self.name)
            self._pending[rid] = pending
            self.requests_sent.append(method)
        pending.rid = rid
        self._send(obj)
        return pending

    def wait(self, pending, timeout=None):
        """The whole response object; no timeout unless given (hooks have none)."""
        if not pending.event.wait(timeout):
            with self._lock:
                self._pending.pop(pending.rid, None)
            raise TimeoutError("%s did not answer %s within %ss" % (self.name, pending.method, timeout))
        if pending.response is None:
            raise PluginDied("%s terminated before replying to %s" % (self.name, pending.method))
        return pending.response

    def call(self, method, params, prefix=None, timeout=None, on_notify=None, request=None):
        return self.wait(self.request(method, params, prefix, on_notify, request), timeout)

    # ---- reading -------------------------------------------------------
    def _reader(self):
        stream = JSONStream()
        fd = self.proc.stdout.fileno()
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError as e:
                self.node.log("debug", self.log_prefix, "read failed: %s" % e)
                data = b""
            if not data:
                break
            try:
                msgs = stream.feed(data)
            except InvalidJSON as e:
                self.kill_for("invalid JSON output: %s" % e)
                break
            for msg in msgs:
                if not self._handle(msg):
                    break
            else:
                continue
            break
        self._on_exit()

    def _handle(self, msg) -> bool:
        if not isinstance(msg, dict) or "jsonrpc" not in msg:
            self.kill_for("JSON-RPC message does not contain \"jsonrpc\" field: %s" % json.dumps(msg)[:200])
            return False
        if "id" in msg:
            with self._lock:
                pending = self._pending.pop(msg["id"], None)
            if pending is None:
                # lightningd ignores responses to ids it does not know (plugin.c:669-695).
                self.node.log("debug", self.log_prefix, "response to unknown id %r" % (msg["id"],))
                return True
            pending.response = msg
            pending.event.set()
            return True
        method = msg.get("method")
        params = msg.get("params")
        if method == "log":
            return self._handle_log(params)
        if method in ("message", "progress"):
            rid = params.get("id") if isinstance(params, dict) else None
            with self._lock:
                pending = self._pending.get(rid)
            if pending is None:
                self.kill_for("%s notification for unknown request id %r" % (method, rid))
                return False
            if pending.on_notify:
                pending.on_notify(msg)
            return True
        declared = [n.get("method") for n in (self.manifest or {}).get("notifications", [])]
        if method in declared:
            self.node.notify_custom(self.name, method, params)
        else:
            self.node.log("unusual", self.log_prefix,
                          "Plugin attempted to send a notification to topic \"%s\" it hasn't declared in its manifest, not forwarding to subscribers." % method)
        return True

    def _handle_log(self, params) -> bool:
        if not isinstance(params, dict) or not isinstance(params.get("message"), str):
            self.kill_for("log notification without a string message: %r" % (params,))
            return False
        raw = params.get("level", "info")
        level = LOG_LEVELS.get(raw.lower()) if isinstance(raw, str) else None
        if level is None:
            self.kill_for("Unknown log-level %r" % (raw,))
            return False
        for line in params["message"].split("\n"):
            if level == "broken":  # recorded before the line, so whoever sees the line sees the fault
                self.node.add_fault("broken-log", self.name, line)
            self.node.log(level, self.log_prefix, line)
        return True

    def _on_exit(self):
        try:
            rc = self.proc.wait(1.0)
        except subprocess.TimeoutExpired:
            # stdout closed but the process lingers: lightningd kills it.
            os.kill(self.proc.pid, signal.SIGKILL)
            rc = self.proc.wait()
        self.exit_time = time.monotonic()
        with self._lock:
            self.returncode = rc
            was = self.state
            if self.state in ("new", "manifest", "init", "active"):
                self.state = "exited"
            pending, self._pending = self._pending, {}
            self._exited.set()
        # Record the fault before releasing waiters, so a caller that sees -4 also sees the fault.
        if was == "active" and not self.expected_exit:
            self.node.log("info", self.log_prefix, "Killing plugin: exited during normal operation")
            self.node.add_fault("plugin-died", self.name,
                                "exited during normal operation (rc=%s); stderr: %s" % (rc, self.stderr_tail(500)))
        self._outq.put(None)  # lets the writer thread end
        for p in pending.values():
            p.event.set()  # response None: the caller sees PluginDied
        self.node.on_plugin_exit(self)
