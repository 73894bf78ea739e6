"""The lightning-rpc Unix socket: a JSON stream in, `obj + "\\n\\n"` out (protocol doc §2)."""
import json
import os
import socket
import threading

from .jsonstream import InvalidJSON, JSONStream

INVALID_REQUEST = -32600


def _write(conn, obj, lock):
    data = (json.dumps(obj, ensure_ascii=False) + "\n\n").encode("utf-8")
    with lock:
        conn.sendall(data)


class RpcServer:
    """Serves many short connections; one thread per connection so a plugin calling
    back into the node while we wait on it is served."""

    def __init__(self, path, handler, name="rpc"):
        self.path = path
        self.handler = handler  # handler(request_dict, send_notification) -> response dict
        self.name = name
        self._sock = None
        self._conns = set()
        self._lock = threading.Lock()
        self._threads = []
        self._closing = threading.Event()

    def start(self):
        if os.path.exists(self.path):
            os.unlink(self.path)
        self._closing.clear()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.path)
        self._sock.listen(64)
        t = threading.Thread(target=self._accept_loop, name=self.name + "-accept", daemon=True)
        self._threads = [t]
        t.start()

    def stop_listening(self):
        """New connections are refused from here on (lightningd shutdown). The socket file
        stays, so clients get ConnectionRefusedError as with lightningd."""
        self._closing.set()
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # never connected: shutdown is only a wake-up for accept()
            self._sock.close()
            self._sock = None

    def stop(self, timeout=5.0):
        self.stop_listening()
        # A connection accepted just before the socket closed is registered by the accept
        # thread after that: wait for it to end before taking the list, or that
        # connection's thread outlives the stop (seen as a teardown fault under load).
        if self._threads:
            self._threads[0].join(timeout)
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # peer already closed it
        for t in list(self._threads):
            t.join(timeout)

    def _accept_loop(self):
        sock = self._sock
        while not self._closing.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                return  # listening socket closed by stop_listening()
            with self._lock:
                self._conns.add(conn)
            t = threading.Thread(target=self._serve, args=(conn,), name=self.name + "-conn", daemon=True)
            t.start()
            with self._lock:    # the accept thread stays first (stop joins it first)
                self._threads = self._threads[:1] + [
                    x for x in self._threads[1:] if x.is_alive()] + [t]

    def _serve(self, conn):
        stream = JSONStream()
        wlock = threading.Lock()
        state = {"notifications": False}

        def send_notification(obj):
            if state["notifications"]:
                _write(conn, obj, wlock)

        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                try:
                    reqs = stream.feed(data)
                except InvalidJSON as e:
                    # lightningd answers with id null and half-closes (jsonrpc.c:1204-1210).
                    _write(conn, {"jsonrpc": "2.0", "id": None, "error": {
                        "code": INVALID_REQUEST,
                        "message": "Invalid token in json input: '%s'" % str(e)[:100]}}, wlock)
                    conn.shutdown(socket.SHUT_WR)
                    return
                for req in reqs:
                    if isinstance(req, dict) and req.get("method") == "notifications" and "id" in req:
                        enable = (req.get("params") or {}).get("enable", True) if isinstance(req.get("params"), dict) else True
                        state["notifications"] = bool(enable)
                        _write(conn, {"jsonrpc": "2.0", "id": req["id"], "result": {}}, wlock)
                        continue
                    _write(conn, self.handler(req, send_notification), wlock)
        except OSError as e:
            if not self._closing.is_set():
                # A client that vanished mid-reply is normal; note it for debugging.
                self.handler_log("rpc connection ended: %s" % e)
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def handler_log(self, msg):
        """Overridden by the node to route socket errors to its log."""
