"""A companion that never answers does not stall the hive: read-only commands answer while
the worker waits, the call times out after hive-rpc-timeout-seconds, the intent fails
(and is not retried), and the hive goes on."""
import threading

from tests.fleet_helpers import intent_states, rebalance_args
from tests.test_fleet_intents import FAST


def test_a_hanging_companion_call_times_out_and_the_hive_keeps_answering(fleet):
    [a] = fleet.nodes(1, options={**FAST, "hive-rpc-timeout-seconds": 8},
                      companions=["revenue_ops"])
    a.rpc.call("hive-genesis", {})
    x, y = fleet.nodes(2, plugins=[])
    for peer in (x, y):
        fleet.fund(a, 3_000_000)
        fleet.connect(a, peer)
        a.rpc.fundchannel(peer.id, 1_000_000)
    fleet.mine(1)                               # the channels lock in
    a.rpc.call("revenue-standin-mode", {"mode": "hang", "method": "revenue-rebalance"})
    iid = a.rpc.call("hive-intent", rebalance_args(a, x, y))["intent_id"]
    fleet.wait_for(lambda: len(a.rpc.call("revenue-standin-calls",
                                          {"method": "revenue-rebalance"})["calls"]) == 1,
                   timeout=20, what="the executor to call revenue-rebalance")
    # the worker is waiting on the companion now; read-only commands do not wait with it
    answers = {}
    t = threading.Thread(target=lambda: answers.update(
        status=a.rpc.call("hive-status"), members=a.rpc.call("hive-members")), daemon=True)
    t.start()
    t.join(5)
    assert answers["status"]["machines"]["intent_lock"] == {"executing": 1}
    assert answers["members"]["our_id"] == a.id
    fleet.wait_for(lambda: intent_states(a).get(iid) == "failed", timeout=20,
                   what="the hanging call to time out and the intent to fail")
    [row] = [i for i in a.rpc.call("hive-intents")["intents"] if i["intent_id"] == iid]
    assert "within 8 seconds" in row["failure"]
    a.rpc.call("revenue-standin-mode", {"mode": "ok"})
    assert len(a.rpc.call("revenue-standin-calls",
                          {"method": "revenue-rebalance"})["calls"]) == 1
