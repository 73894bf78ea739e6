#!/usr/bin/env python3
"""Stand-in for cl-revenue-ops, named as lightningd lists the real one (`cl-revenue-ops`):
revenue-status, revenue-policy, revenue-rebalance, as revenue_model.py models them.

Options: `revenue-standin-version` (default 2.1.0, what v2.2.3 reports; 3.0.0 has no `hive`
strategy), `revenue-standin-sling` (v2 rebalances only with sling). Control:
`revenue-standin-mode mode=ok|fail|hang|die|slow|garbage [method=] [code=] [message=] [delay=]`,
`revenue-standin-calls [method=]`."""
from pyln.client import Plugin
from revenue_model import RevenueOps
from standin_control import Control

plugin = Plugin(dynamic=True)
plugin.add_option("revenue-standin-version", "2.1.0", "Version the stand-in reports and behaves as")
plugin.add_option("revenue-standin-sling", True, "Whether the sling plugin is present (v2 rebalancing)",
                  opt_type="bool")
control = Control(plugin, "revenue")
model = RevenueOps()


@plugin.init()
def init(options, configuration, plugin, **kwargs):
    model.version = options["revenue-standin-version"]
    model.sling = bool(options["revenue-standin-sling"])


@control.method("revenue-status")
def revenue_status(plugin, request):
    return model.status()


@control.method("revenue-policy")
def revenue_policy(plugin, request, action, peer_id=None, strategy=None, rebalance=None, fee_ppm=None,
                   tag=None, updates=None):
    return model.policy(action, peer_id, strategy, rebalance, fee_ppm, tag, updates)


@control.method("revenue-rebalance")
def revenue_rebalance(plugin, request, from_channel, to_channel, amount_sats, max_fee_sats=None, force=False):
    return model.rebalance(from_channel, to_channel, amount_sats, max_fee_sats, force)


if __name__ == "__main__":
    plugin.run()
