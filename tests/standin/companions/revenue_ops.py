#!/usr/bin/env python3
"""Stand-in for cl-revenue-ops (>= 1.4.0): revenue-status, revenue-policy, revenue-rebalance.

Control: `revenue-standin-mode mode=ok|fail|hang|die [method=] [code=] [message=]`,
`revenue-standin-calls [method=]`."""
import itertools
import time

from pyln.client import Plugin, RpcException
from standin_control import Control

plugin = Plugin()
control = Control(plugin, "revenue")
STRATEGIES = ("static", "dynamic", "hive", "passive")
policies = {}
rebalances = []
_ids = itertools.count(1)
_started = time.time()


def _default(peer_id):
    return {"peer_id": peer_id, "strategy": "dynamic", "base_fee": None, "fee_ppm": None, "rebalance": "enabled"}


@control.method("revenue-status")
def revenue_status(plugin, request):
    return {"status": "running", "version": "1.4.0", "policies": len(policies),
            "uptime_seconds": int(time.time() - _started)}


@control.method("revenue-policy")
def revenue_policy(plugin, request, action, peer_id=None, strategy=None, base_fee=None, fee_ppm=None,
                   rebalance=None):
    if action == "list":
        return {"policies": list(policies.values())}
    if not peer_id:
        raise RpcException("peer_id is required for %s" % action, -32602)
    if action == "get":
        return policies.get(peer_id, _default(peer_id))
    if action == "set":
        if strategy is not None and strategy not in STRATEGIES:
            raise RpcException("strategy must be one of %s" % ", ".join(STRATEGIES), -32602)
        pol = dict(policies.get(peer_id, _default(peer_id)))
        for k, v in (("strategy", strategy), ("base_fee", base_fee), ("fee_ppm", fee_ppm), ("rebalance", rebalance)):
            if v is not None:
                pol[k] = v
        policies[peer_id] = pol
        return {"status": "ok", "policy": pol}
    if action == "delete":
        return {"status": "ok", "deleted": policies.pop(peer_id, None) is not None}
    raise RpcException("unknown action %r (get, set, delete, list)" % action, -32602)


@control.method("revenue-rebalance")
def revenue_rebalance(plugin, request, from_channel, to_channel, amount_sats, max_fee_sats=None, force=False):
    if int(amount_sats) <= 0:
        raise RpcException("amount_sats must be positive", -32602)
    job = {"rebalance_id": next(_ids), "from_channel": from_channel, "to_channel": to_channel,
           "amount_sats": int(amount_sats), "max_fee_sats": max_fee_sats, "status": "initiated"}
    rebalances.append(job)
    return job


if __name__ == "__main__":
    plugin.run()
