"""What an operator sees: three cl-hive nodes on the stand-in, started, connected, queried, stopped.

Run from the repo root:  python -m tests.standin.demo
Each step is a function in STEPS; later steps (genesis, invites, joins) append to the list.
Exits non-zero if any step fails or a node recorded a fault."""
import json
import sys

from .backend import StandinFleet

PLUGIN_PREFIX = "plugin-plugin.py"


def start_nodes(demo):
    demo.nodes = demo.fleet.nodes(3)
    for node in demo.nodes:
        print("  %s  id %s  rpc %s" % (node.name, node.id, node.rpc_path))


def connect_nodes(demo):
    a, b, c = demo.nodes
    for x, y in ((a, b), (b, c), (a, c)):
        res = demo.fleet.connect(x, y)
        print("  %s -> %s  (%s, %s)" % (x.name, y.name, res["direction"], res["address"]["port"]))
    demo.fleet.wait_for(lambda: all(len(n.rpc.listpeers()["peers"]) == 2 for n in demo.nodes),
                        timeout=10, what="every node to see two peers")


def show_status(demo):
    for node in demo.nodes:
        print("  %s hive-status:" % node.name)
        status = node.rpc.call("hive-status")
        print("    " + json.dumps(status, indent=2, sort_keys=True).replace("\n", "\n    "))


def show_logs(demo):
    for node in demo.nodes:
        lines = [l for l in node.logs if l.prefix == PLUGIN_PREFIX]
        shown = [l for l in lines if '"event": "fsm.transition"' in l.message] or \
                [l for l in lines if l.level == "info"]
        print("  %s (%d of %d plugin log lines):" % (node.name, len(shown), len(lines)))
        for line in shown:
            print("    %-7s %s" % (line.level.upper(), line.message))


def stop_nodes(demo):
    for node in demo.nodes:
        times = node.stop()
        print("  %s stopped; plugin exit after shutdown: %s" % (
            node.name, ", ".join("%s %.3fs" % kv for kv in sorted(times.items()))))


STEPS = [
    ("Start three nodes running cl-hive", start_nodes),
    ("Connect them", connect_nodes),
    ("hive-status of each node", show_status),
    ("What the plugin logged", show_logs),
    ("Stop the fleet gracefully", stop_nodes),
]


class Demo:
    def __init__(self, fleet):
        self.fleet = fleet
        self.nodes = []


def main() -> int:
    fleet = StandinFleet(seed=1)
    demo = Demo(fleet)
    failed = None
    try:
        for i, (title, step) in enumerate(STEPS, 1):
            print("\n[%d/%d] %s" % (i, len(STEPS), title))
            step(demo)
    except Exception as e:  # a CLI: report which step failed and exit non-zero
        failed = "%s: %s" % (type(e).__name__, e)
    finally:
        problems = fleet.teardown()
    for p in problems:
        print("PROBLEM: " + p)
    if failed:
        print("\nFAILED: " + failed)
    if failed or problems:
        return 1
    print("\nOK: %d steps" % len(STEPS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
