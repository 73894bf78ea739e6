"""The fleet API on real lightningd: pyln-testing's NodeFactory starts the nodes, each on our
regtest chain (tests/chain) through our Bitcoin backend plugin instead of bcli+bitcoind."""
import contextlib
import datetime
import os
import re
import shutil
import signal
import sys
import tempfile
import threading

from tests.chain.pyln_bitcoind import BACKEND_PLUGIN
from tests.standin.backend import HIVE_PLUGIN, forward_fee, per_node, plugin_list, wait_until
from tests.standin.logbook import LogLine

# The plugins run with the interpreter running the tests (it has their dependencies).
PYTHON_BIN = os.path.dirname(sys.executable)
# "<time> <LEVEL> <prefix>: <message>" in lightningd's log (after pyln-testing's log-prefix).
LOG_LINE = re.compile(r"(\S+Z) +(\*\*BROKEN\*\*|UNUSUAL|INFO|DEBUG|TRACE|IO_IN|IO_OUT) +([^:\s]+): (.*)$")


def lightningd_missing():
    """Why real-lightningd tests cannot run here, or None."""
    if os.environ.get("HIVE_TEST_BACKEND", "auto") == "standin":
        return "HIVE_TEST_BACKEND=standin"
    if shutil.which("lightningd") is None:
        return "lightningd not on PATH (install Core Lightning v26.06 to run them)"
    return None


def rust_plugins_installed():
    """pyln-testing gives each node a --grpc-port unless RUST=0; a build without the Rust
    plugins (no cln-grpc) refuses that option."""
    exe = os.path.realpath(shutil.which("lightningd"))
    return os.path.exists(os.path.join(os.path.dirname(exe), "..", "libexec", "c-lightning", "plugins",
                                       "cln-grpc"))


def pyln_environment():
    if not rust_plugins_installed():
        os.environ.setdefault("RUST", "0")


def _skip(reason):
    import pytest
    pytest.skip("stand-in only: " + reason)


class RealNode:
    """A pyln-testing LightningNode behind the same small API as the stand-in Node."""
    standin = property(lambda self: _skip("node.standin (fake data, fault injection) needs the stand-in"))

    def __init__(self, ln, name):
        self.ln, self.name = ln, name

    @property
    def id(self):
        return self.ln.info["id"]

    @property
    def rpc(self):
        return self.ln.rpc

    @property
    def port(self):
        return self.ln.port

    @property
    def rpc_path(self):
        return self.ln.rpc.socket_path

    def plugin_log(self, plugin):
        """The messages `plugin` (a file name) logged through lightningd, oldest first."""
        self.ln.daemon.logs_catchup()
        mark = " plugin-%s: " % plugin
        return [line.split(mark, 1)[1] for line in self.ln.daemon.logs if mark in line]

    def plugin_lines(self, plugin):
        """plugin_log with each line's time and level, as the stand-in's LogLine."""
        self.ln.daemon.logs_catchup()
        lines = []
        for raw in self.ln.daemon.logs:
            m = LOG_LINE.search(raw)
            if m and m.group(3) == "plugin-" + plugin:
                when = datetime.datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp()
                lines.append(LogLine(when, m.group(2).strip("*").lower(), m.group(3), m.group(4)))
        return lines

    def expect_fault(self, pattern):
        """Nothing to expect: lightningd logs a plugin's death at INFO, which fails no test
        (the stand-in records it as a fault so that a crash of cl-hive itself is caught)."""

    def start(self):
        self.ln.start()

    def stop(self):
        self.ln.stop()
        return {}  # per-plugin exit times are a stand-in measurement

    def restart(self):
        self.ln.restart()

    def kill_plugin(self, name):
        """SIGKILL a plugin; returns once lightningd has seen it die (as the stand-in's does:
        lightningd notices a plugin's death a moment later, and until then refuses to start
        it again, "already registered")."""
        import psutil  # comes with pyln-testing
        for child in psutil.Process(self.ln.daemon.proc.pid).children(recursive=True):
            if any(os.path.basename(a) == name for a in child.cmdline()):
                os.kill(child.pid, signal.SIGKILL)
                wait_until(lambda: not any(os.path.basename(p["name"]) == name
                                           for p in self.rpc.plugin("list")["plugins"]),
                           10.0, 0.05, "lightningd to see %s die" % name)
                return child.pid
        raise KeyError("%s runs no plugin %r" % (self.name, name))

    def wait_for_log(self, pattern, timeout=10.0, **_):
        return self.ln.daemon.wait_for_log(pattern, timeout=timeout)


class LightningdFleet:
    kind = "lightningd"
    network = property(lambda self: _skip("fleet.network (chaos knobs) needs the stand-in"))

    def __init__(self, node_factory, bitcoind, plugin=HIVE_PLUGIN, echo_logs=True):
        self.node_factory, self.bitcoind, self.plugin = node_factory, bitcoind, plugin
        self.echo_logs = echo_logs       # lightningd's log also on stdout (pytest shows it on failure)
        self.chain = bitcoind.chain
        self.all_nodes = []

    def nodes(self, n, options=None, companions=(), plugins=None, start=True):
        opts = []
        for o in per_node(options, n):
            o["plugin"] = [str(BACKEND_PLUGIN)] + plugin_list(plugins, companions, self.plugin)
            o["disable-plugin"] = "bcli"
            o["start"] = False
            opts.append(o)
        made = [RealNode(ln, "l%d" % (len(self.all_nodes) + i + 1))
                for i, ln in enumerate(self.node_factory.get_nodes(n, opts=opts))]
        for node in made:
            if not self.echo_logs:
                node.ln.daemon.opts["log-file"] = [f for f in node.ln.daemon.opts["log-file"] if f != "-"]
            node.ln.daemon.env["PATH"] = PYTHON_BIN + os.pathsep + node.ln.daemon.env.get("PATH", "")
        if start:
            _start_all(made)
        self.all_nodes += made
        return made

    def node(self, **kwargs):
        return self.nodes(1, **kwargs)[0]

    def connect(self, a, b):
        return a.rpc.connect(b.id, "localhost", b.ln.port)

    def disconnect(self, a, b):
        a.rpc.disconnect(b.id, force=True)

    def wait_for(self, cond, timeout=10.0, interval=0.05, what=None):
        return wait_until(cond, timeout, interval, what)

    def fund(self, node, amount_sat):
        """Pay amount_sat to node's wallet in a new block; returns when the wallet holds it."""
        addr = node.rpc.newaddr()
        txid = self.chain.fund(addr.get("bech32") or addr["p2tr"], amount_sat)
        self.mine(1)
        self.wait_for(lambda: any(o["txid"] == txid and o["status"] == "confirmed"
                                  for o in node.rpc.listfunds()["outputs"]),
                      timeout=30, what="%s's wallet to see its funds" % node.name)
        return txid

    def mine(self, n=1):
        """Mine n blocks; returns when every running node has processed them."""
        self.chain.mine(n)
        height = self.chain.height
        for node in self.all_nodes:
            if node.ln.daemon.proc is not None and node.ln.daemon.proc.poll() is None:
                self.wait_for(lambda: node.rpc.getinfo()["blockheight"] >= height, timeout=30,
                              what="%s to reach height %d" % (node.name, height))

    def forward(self, hop, payer, payee, amount_msat):
        """payer pays payee amount_msat through hop (a real payment over their channels, on a
        route given by hand: unannounced channels are not in payer's gossip); returns once paid."""
        [cin] = payer.rpc.listpeerchannels(hop.id)["channels"]
        [cout] = hop.rpc.listpeerchannels(payee.id)["channels"]
        policy = cout["updates"]["local"]
        inv = payee.rpc.invoice(amount_msat, "forward-%d" % len(payee.rpc.listinvoices()["invoices"]), "forward")
        final = payee.rpc.decode(inv["bolt11"])["min_final_cltv_expiry"]
        route = [{"id": hop.id, "channel": cin["short_channel_id"], "direction": cin["direction"],
                  "amount_msat": amount_msat + forward_fee(policy, amount_msat),
                  "delay": final + policy["cltv_expiry_delta"], "style": "tlv"},
                 {"id": payee.id, "channel": cout["short_channel_id"], "direction": cout["direction"],
                  "amount_msat": amount_msat, "delay": final, "style": "tlv"}]
        payer.rpc.sendpay(route, inv["payment_hash"], payment_secret=inv["payment_secret"],
                          amount_msat=amount_msat)
        payer.rpc.waitsendpay(inv["payment_hash"], timeout=30)

    def teardown(self):
        return []  # node_factory's own teardown checks logs for BROKEN lines


@contextlib.contextmanager
def standalone_fleet(seed_dir=None):
    """A LightningdFleet outside pytest (the demo): yields (fleet, problems); on exit stops
    every node and fills `problems` with what pyln-testing's teardown would fail a test on."""
    from concurrent.futures import ThreadPoolExecutor

    from pyln.testing.db import SqliteDbProvider
    from pyln.testing.utils import LightningNode, NodeFactory

    from tests.chain.pyln_bitcoind import RegtestBitcoind

    pyln_environment()
    base = tempfile.mkdtemp(prefix="hive-ln-", dir=seed_dir)
    bitcoind, executor = RegtestBitcoind(), ThreadPoolExecutor(max_workers=10)
    db = SqliteDbProvider(base)
    db.start()
    factory = NodeFactory(None, "demo", bitcoind, executor, directory=base, db_provider=db,
                          node_cls=LightningNode, jsonschemas={})
    problems = []
    try:
        yield LightningdFleet(factory, bitcoind, echo_logs=False), problems
    finally:
        ok, errs = factory.killall([True] * len(factory.nodes))
        problems += errs
        for ln in factory.nodes:
            ln.daemon.logs_catchup()
            problems += [line for line in ln.daemon.logs if "**BROKEN**" in line]
            ln.daemon.cleanup_files()
        db.stop()
        bitcoind.stop()
        executor.shutdown(wait=False)
        if not problems:
            shutil.rmtree(base, ignore_errors=True)


def _start_all(nodes):
    """Start lightningd nodes side by side; re-raise the first error."""
    errors = []

    def run(node):
        try:
            node.start()
        except BaseException as e:  # handed to the caller below
            errors.append(e)
    threads = [threading.Thread(target=run, args=(n,), name="lightningd-start-" + n.name) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


__all__ = ["LightningdFleet", "RealNode", "lightningd_missing", "standalone_fleet"]
