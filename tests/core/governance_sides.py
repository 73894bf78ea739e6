"""For governance tests: a one-node hive (real SQLite, manual clock) whose lightningd also
hosts CLBoss and cl-revenue-ops (bridge_sides: calls really run on the bridge's pool), the
custom notifications it sends recorded as lightningd receives them, and an oracle: a real
HTTP server on 127.0.0.1 that answers as each test tells it to."""
from __future__ import annotations

import dataclasses
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bridge_sides import BridgeSide
from handlers.governance import actions
from handlers.governance import execution as governance
from handlers.governance import notify
from handlers.intents import execution as intents
from hive_sides import form_hive

TARGETS = ["02" + "%064x" % (i + 1) for i in range(20)]
AMOUNT = 100_000


class Notes:
    """ctx.notifier: what cl-hive hands lightningd, in order."""

    def __init__(self):
        self.sent: list[tuple[str, dict]] = []

    def notify(self, topic, payload):
        json.dumps(payload)           # it must travel as JSON
        self.sent.append((topic, payload))

    def topics(self, action_id):
        return [t for t, p in self.sent if p["id"] == action_id]


class GovSide(BridgeSide):
    def __init__(self, name, tmp_path, clock, **options):
        super().__init__(name, tmp_path, clock, **options)
        self.notes = self.ctx.notifier = Notes()
        notify.install(self.ctx, actions.view)

    def configure(self, **fields):
        self.config = dataclasses.replace(self.config, **fields)

    def propose(self, target=TARGETS[0], amount=AMOUNT, kind="channel_open", **kw) -> dict:
        out = actions.propose(self.ctx, kind, target, amount, kw.pop("reason", "test"), **kw)
        self.settle()
        return actions.view(self.ctx, out["id"])

    def state(self, action_id) -> str:
        return actions.view(self.ctx, action_id)["state"]

    def run(self, seconds=0):
        """Time passes, then the engine's tick (deadlines, intents, governance, bridge)."""
        self.clock.advance(seconds)
        self.dispatcher.fire_due()
        intents.on_tick(self.ctx)
        governance.on_tick(self.ctx)
        self.bridge.on_tick(self.ctx)
        self.settle()

    def opened(self, target=TARGETS[0]) -> int:
        return sum(1 for f in self.lightning.fundings if f["id"] == target)


@pytest.fixture
def gov(tmp_path, clock):
    side = GovSide("a", tmp_path, clock)
    form_hive(side)
    side.bridge.start(side.ctx)
    side.settle()
    yield side
    side.close()


class Oracle:
    """How the oracle answers the next requests: (status, body bytes, seconds to wait
    first). `gate`, when set, holds every answer until it is opened."""

    def __init__(self):
        self.answer = (200, b'{"decision": "approve", "reason": "fine"}', 0.0)
        self.requests: list[dict] = []
        self.gate: threading.Event | None = None
        self._wake = threading.Event()     # ends waits when the test ends
        oracle = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                oracle.requests.append({"path": self.path,
                                        "type": self.headers.get("Content-Type"),
                                        "body": json.loads(self.rfile.read(length))})
                if oracle.gate is not None:
                    oracle.gate.wait(30)
                status, body, delay = oracle.answer
                if delay:
                    oracle._wake.wait(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    if status in (301, 302, 307):
                        self.send_header("Location", "/elsewhere")
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass            # the client gave up (a timeout test): nothing to answer

            def log_message(self, *args):
                pass                # stdout belongs to pytest

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/decide"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self._wake.set()
        if self.gate is not None:
            self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def oracle():
    o = Oracle()
    yield o
    o.close()


def closed_port_url() -> str:
    """A 127.0.0.1 URL nobody listens on: the connection is refused."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/decide"


def restart(side: GovSide) -> None:
    """What a plugin restart does: the same database file opened anew, a new pool (the
    old one's calls are lost with the process), then start-up's reconciliations."""
    from handlers.frame.dispatch import Dispatcher
    from storage.db import Database
    side.db.close()
    side.db = side.ctx.db = Database(side.config.db_path)
    side.dispatcher = side.ctx.dispatcher = Dispatcher(side.db, side.clock, lambda: side.config)
    notify.install(side.ctx, actions.view)
    side.new_bridge()
    intents.reconcile(side.ctx)
    governance.reconcile(side.ctx)
