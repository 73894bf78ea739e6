"""Companion faults on a running fleet, shared by tests/test_fleet_bridge.py (which asserts
what happens) and bench/bridge.py (which prints how long it took)."""
import threading
import time

from .backend import COMPANIONS

# Short intervals so a breaker opens and closes in seconds; the defaults suit a real node.
FAST = {"hive-tick-seconds": 1, "hive-bridge-check-seconds": 2, "hive-bridge-timeout-seconds": 2,
        "hive-breaker-failure-threshold": 2, "hive-breaker-reset-seconds": 3}
NAME = {"revenue_ops": "cl-revenue-ops", "clboss": "clboss"}
PREFIX = {"revenue_ops": "revenue", "clboss": "clboss"}
FILE = {"revenue_ops": "cl-revenue-ops.py", "clboss": "clboss"}
FAULTS = ("hang", "die", "slow", "garbage")


def status_within(node, seconds=15.0):
    """hive-status, which must answer while a companion hangs. A hung companion never
    answers, so a status that waited on it would never come: the bound only ends the test
    and is generous (a busy CI machine), it is not a speed claim (bench/ measures that)."""
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("status", node.rpc.call("hive-status")), daemon=True)
    t.start()
    t.join(seconds)
    if "status" not in box:
        raise AssertionError("hive-status did not answer within %ss" % seconds)
    return box["status"]


def companion(node, which):
    return status_within(node)["bridge"][NAME[which]]


def wait_breaker(fleet, node, which, state, timeout=30.0):
    """Poll hive-status (each answer must come while a companion hangs) until the breaker
    is in `state`."""
    return fleet.wait_for(lambda: companion(node, which)["breaker"]["state"] == state,
                          timeout=timeout, interval=0.05,
                          what="%s's %s breaker to be %s" % (node.name, NAME[which], state))


def inject(node, which, fault):
    if fault == "die":
        node.expect_fault("plugin-died.*" + FILE[which])   # a no-op on real lightningd
    params = {"mode": fault}
    if fault == "slow":
        params["delay"] = 2 * FAST["hive-bridge-timeout-seconds"]
    node.rpc.call(PREFIX[which] + "-standin-mode", params)


def recover(node, which, fault):
    """What the operator does: a dead or hung companion is (re)started; a slow or garbled
    one is fixed in place."""
    if fault in ("die", "hang"):
        if fault == "hang":
            node.kill_plugin(FILE[which])      # lightningd answers its hung calls -4
        node.rpc.call("plugin", {"subcommand": "start", "plugin": str(COMPANIONS[which])})
    else:
        node.rpc.call(PREFIX[which] + "-standin-mode", {"mode": "ok"})


def open_and_close(fleet, node, which, fault):
    """Inject `fault`, wait for the breaker to open, recover, wait for it to close.
    Returns (seconds to open, seconds to close), wall clock on the stand-in fleet."""
    fleet.wait_for(lambda: companion(node, which)["detected"], timeout=15, what="detection")
    t0 = time.monotonic()
    inject(node, which, fault)
    wait_breaker(fleet, node, which, "open")
    opened = time.monotonic() - t0
    t1 = time.monotonic()
    recover(node, which, fault)
    wait_breaker(fleet, node, which, "closed")
    return opened, time.monotonic() - t1
