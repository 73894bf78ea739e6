"""The fleet API on the stand-in (tests/lightningd_fleet.py has the same API on real lightningd)."""
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from .network import Network
from .node import Node, NodeFault

STANDIN_DIR = Path(__file__).resolve().parent
REPO_ROOT = STANDIN_DIR.parents[1]
HIVE_PLUGIN = REPO_ROOT / "plugin.py"
PROBE_PLUGIN = STANDIN_DIR / "probe_plugin.py"
COMPANIONS = {"revenue_ops": STANDIN_DIR / "companions" / "cl-revenue-ops.py",
              "clboss": STANDIN_DIR / "companions" / "clboss"}


def plugin_list(plugins, companions, default):
    paths = [str(p) for p in (plugins if plugins is not None else [default])]
    for c in companions or ():
        if c not in COMPANIONS:
            raise KeyError("unknown companion %r (have: %s)" % (c, ", ".join(COMPANIONS)))
        paths.append(str(COMPANIONS[c]))
    return paths


def per_node(options, n):
    if isinstance(options, list):
        if len(options) != n:
            raise ValueError("%d option dicts for %d nodes" % (len(options), n))
        return [dict(o or {}) for o in options]
    return [dict(options or {}) for _ in range(n)]


def wait_until(cond, timeout, interval, what, check=None):
    """Poll cond() until truthy (returned); `check` runs each round and may raise."""
    deadline = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after %ss waiting for %s" % (timeout, what or getattr(cond, "__name__", cond)))
        time.sleep(interval)


def forward_fee(policy, amount_msat):
    """The fee a channel's `updates` policy charges for forwarding amount_msat (BOLT 7)."""
    return policy["fee_base_msat"] + amount_msat * policy["fee_proportional_millionths"] // 1_000_000


class StandinFleet:
    """Nodes on the stand-in. `fleet.network` has the chaos knobs; each node's `.standin`
    (the Node itself) has fake data and fault controls."""
    kind = "standin"

    def __init__(self, seed=0, plugin=HIVE_PLUGIN, startup_timeout=60.0, shutdown_timeout=30.0):
        # Short, under /tmp: AF_UNIX socket paths are limited to ~108 bytes.
        self.base_dir = tempfile.mkdtemp(prefix="hive-", dir="/tmp" if os.path.isdir("/tmp") else None)
        self.seed = seed
        self.plugin = plugin
        self.network = Network(seed)
        self.all_nodes = []
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout

    def nodes(self, n, options=None, companions=(), plugins=None, start=True):
        """n new nodes, each running cl-hive (or `plugins`) plus the named companions."""
        made = []
        for opts in per_node(options, n):
            name = "l%d" % (len(self.all_nodes) + 1)
            node = Node(name, self.base_dir, plugins=plugin_list(plugins, companions, self.plugin), options=opts,
                        seed="%s:%s" % (self.seed, name), startup_timeout=self.startup_timeout,
                        shutdown_timeout=self.shutdown_timeout)
            self.network.add_node(node)
            self.all_nodes.append(node)
            made.append(node)
        if start:
            self._start_all(made)
        return made

    @staticmethod
    def _start_all(nodes):
        """Start nodes side by side (plugin start-up is mostly Python imports); re-raise the first error."""
        errors = []

        def run(node):
            try:
                node.start()
            except BaseException as e:  # handed to the caller below
                errors.append(e)

        threads = [threading.Thread(target=run, args=(n,), name="fleet-start-" + n.name) for n in nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def node(self, **kwargs):
        return self.nodes(1, **kwargs)[0]

    def connect(self, a, b):
        return self.network.connect(a, b.id)

    def disconnect(self, a, b):
        self.network.disconnect(a, b.id)

    def fund(self, node, amount_sat):
        """A confirmed output of amount_sat in node's wallet."""
        return node.data.add_funds(amount_sat)["txid"]

    def mine(self, n=1):
        """n blocks: funded channels lock in at the first, are announced at the sixth."""
        self.network.mine(n)

    def forward(self, hop, payer, payee, amount_msat):
        """payer pays payee amount_msat through hop: hop sees the forward_event pair lightningd
        emits for it (offered, then settled), its fee being hop's own on the channel out."""
        [cin], [cout] = (hop.rpc.listpeerchannels(p.id)["channels"] for p in (payer, payee))
        fee = forward_fee(cout["updates"]["local"], amount_msat)
        for status in ("offered", "settled"):
            hop.inject_forward(in_channel=cin["short_channel_id"], out_channel=cout["short_channel_id"],
                               in_msat=amount_msat + fee, out_msat=amount_msat, status=status)

    def check_faults(self):
        for node in self.all_nodes:
            node.check_faults()

    def wait_for(self, cond, timeout=10.0, interval=0.05, what=None):
        """Poll until cond() is truthy; raises on timeout, or at once on an unexpected fault."""
        return wait_until(cond, timeout, interval, what, check=self.check_faults)

    def teardown(self):
        """Kill every plugin, stop every thread, remove the dirs; returns problems found."""
        problems = []
        for node in self.all_nodes:
            node.kill_all()
        self.network.close()
        for node in self.all_nodes:
            problems += ["%s: unexpected fault %s" % (node.name, f) for f in node.faults]
            problems += ["%s: plugin %s (pid %s) still running" % (node.name, h.name, h.pid)
                         for h in node.hosts if h.alive]
        prefixes = tuple("%s-" % n.name for n in self.all_nodes) + ("net-",)
        problems += ["thread %s still running" % t.name for t in threading.enumerate()
                     if t.name.startswith(prefixes) and t.is_alive()]
        shutil.rmtree(self.base_dir, ignore_errors=True)
        return problems


__all__ = ["StandinFleet", "NodeFault", "HIVE_PLUGIN", "PROBE_PLUGIN", "COMPANIONS", "per_node", "plugin_list",
           "wait_until", "forward_fee"]
