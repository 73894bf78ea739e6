"""Intent locks on a fleet of real plugin processes: two members announce a channel open
to the same target at the same moment and exactly one opens it (a real channel on
lightningd: funded, confirmed and announced), also with delayed,
duplicated and reordered messages; an intent interrupted while executing is not run
again after the plugin restarts."""
import threading

import pytest
from pyln.client import RpcError

from handlers.frame import errors

from tests.fleet_helpers import form_hive, intent_states, rebalance_args
from tests.standin.backend import HIVE_PLUGIN

FAST = {"hive-tick-seconds": 1, "hive-intent-hold-seconds": 5,
        "hive-intent-expire-seconds": 60}


def hive_of(fleet, n, companions=()):
    return form_hive(fleet, fleet.nodes(n, options=FAST, companions=companions))


def race_for(fleet, a, b, target):
    for n in (a, b):
        fleet.fund(n, 5_000_000)
        fleet.connect(n, target)
    ids, refused = {}, {}

    def go(node):
        try:
            ids[node.id] = node.rpc.call("hive-intent", {
                "type": "channel_open", "target": target.id, "amount_sat": 1_000_000})["intent_id"]
        except RpcError as e:      # the other's INTENT arrived first: the target is held
            refused[node.id] = (e.error["code"], e.error["message"])
    threads = [threading.Thread(target=go, args=(n,)) for n in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(code == errors.TARGET_HELD and m.startswith("target: held by")
               for code, m in refused.values()), refused
    if len(ids) == 2:               # both announced before hearing of the other: the key decides
        winner, loser = (a, b) if a.id < b.id else (b, a)
        fleet.wait_for(lambda: intent_states(loser)[ids[loser.id]] == "aborted", timeout=10,
                       what="the loser's intent to be aborted")
    else:
        [winner] = [n for n in (a, b) if n.id in ids]
        loser = b if winner is a else a
    fleet.wait_for(lambda: intent_states(winner)[ids[winner.id]] == "executed", timeout=30,
                   what="the winner's intent to execute")
    opened = [c for c in target.rpc.listpeerchannels()["channels"]
              if c["peer_id"] in (a.id, b.id)]
    assert [c["peer_id"] for c in opened] == [winner.id]
    fleet.mine(6)                   # confirmed deep enough to be announced
    fleet.wait_for(lambda: [c["state"] for c in target.rpc.listpeerchannels(winner.id)["channels"]] ==
                   ["CHANNELD_NORMAL"], timeout=30, what="the channel to be usable")
    fleet.wait_for(lambda: {c["destination"] for c in target.rpc.listchannels(source=winner.id)["channels"]} ==
                   {target.id}, timeout=30, what="the channel to be announced")
    return winner, loser


def test_two_members_race_for_one_target_and_exactly_one_opens(fleet):
    a, b = hive_of(fleet, 2)
    target = fleet.nodes(1, plugins=[])[0]
    race_for(fleet, a, b, target)


@pytest.mark.standin_only
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_race_holds_with_delayed_duplicated_and_reordered_messages(fleet, seed):
    # Stand-in only: delaying, duplicating and reordering messages are chaos knobs (BOLT 8
    # over TCP on lightningd delivers each message once, in order).
    a, b = hive_of(fleet, 2)
    target = fleet.nodes(1, plugins=[])[0]
    fleet.network.set_chaos(seed=seed, delay=(0.0, 1.5), duplicate=0.3, reorder=True)
    race_for(fleet, a, b, target)


def test_an_intent_interrupted_while_executing_is_not_run_twice(fleet):
    a, = hive_of(fleet, 1, companions=["revenue_ops"])
    x, y = fleet.nodes(2, plugins=[])
    for peer in (x, y):
        fleet.fund(a, 3_000_000)
        fleet.connect(a, peer)
        a.rpc.fundchannel(peer.id, 1_000_000)
    fleet.mine(1)                               # the channels lock in: rebalancing needs them open
    a.rpc.call("revenue-standin-mode", {"mode": "hang", "method": "revenue-rebalance"})
    iid = a.rpc.call("hive-intent", rebalance_args(a, x, y))["intent_id"]
    fleet.wait_for(lambda: len(a.rpc.call("revenue-standin-calls",
                                          {"method": "revenue-rebalance"})["calls"]) == 1,
                   timeout=20, what="the executor to call revenue-rebalance")
    a.kill_plugin("plugin.py")                  # crash while `executing`
    a.rpc.call("plugin", {"subcommand": "start", "plugin": str(HIVE_PLUGIN), **FAST})
    fleet.wait_for(lambda: intent_states(a).get(iid) == "failed", timeout=10,
                   what="the interrupted intent to be reconciled")
    [row] = [i for i in a.rpc.call("hive-intents")["intents"] if i["intent_id"] == iid]
    assert "interrupted by a restart" in row["failure"]
    a.rpc.call("revenue-standin-mode", {"mode": "ok"})
    a.rpc.call("hive-status")                   # a few ticks later, still one call
    fleet.wait_for(lambda: a.rpc.call("hive-status")["machines"]["intent_lock"] ==
                   {"failed": 1}, timeout=5)
    assert len(a.rpc.call("revenue-standin-calls",
                          {"method": "revenue-rebalance"})["calls"]) == 1
