"""cl-revenue-ops as ../../../shared/reference/companions.md describes it, with no plugin
around it: the stand-in script (cl-revenue-ops.py) and the core tests run this one model.

Errors are results, not JSON-RPC errors (`{"error": ...}` or `{"status": "error", ...}`);
`revenue-policy set` answers `status: success`; at most 10 changes a minute per peer
(`batch` skips that limit, up to 100 updates); v3.0.0 has no `hive` strategy; v2 needs the
sling plugin to rebalance."""
import itertools
import json
import time

RATE_LIMIT, RATE_WINDOW, BATCH_MAX = 10, 60.0, 100
REBALANCE_MODES = ("enabled", "disabled", "source_only", "sink_only")


def version_tuple(version):
    return tuple(int(x) for x in str(version).split(".")[:3])


class RevenueOps:
    def __init__(self, version="2.1.0", sling=True, clock=time.time):
        self.version = version
        self.sling = sling
        self.clock = clock
        self.policies = {}
        self.rebalances = []
        self._changes = {}
        self._ids = itertools.count(1)

    @property
    def strategies(self):
        base = ("dynamic", "static", "passive")
        return base if version_tuple(self.version) >= (3, 0, 0) else base + ("hive",)

    def status(self):
        return {"status": "running", "version": self.version,
                "config": {"hive_fee_ppm": 0}, "policies": len(self.policies)}

    def _policy(self, peer_id):
        return self.policies.get(peer_id) or {
            "peer_id": peer_id, "strategy": "dynamic", "rebalance_mode": "enabled",
            "fee_ppm_target": None, "tags": [], "updated_at": 0}

    def _apply(self, peer_id, strategy=None, rebalance=None, fee_ppm=None):
        """One change; ValueError carries the message the real plugin puts in the body."""
        if strategy is not None and strategy not in self.strategies:
            raise ValueError("Invalid strategy '%s'. Valid: %s" % (strategy, ", ".join(self.strategies)))
        if rebalance is not None and rebalance not in REBALANCE_MODES:
            raise ValueError("Invalid rebalance mode '%s'" % rebalance)
        pol = dict(self._policy(peer_id))
        if strategy == "static" and fee_ppm is None and pol["fee_ppm_target"] is None:
            raise ValueError("static strategy requires fee_ppm")
        for key, value in (("strategy", strategy), ("rebalance_mode", rebalance),
                           ("fee_ppm_target", fee_ppm)):
            if value is not None:
                pol[key] = value
        pol["updated_at"] = int(self.clock())
        self.policies[peer_id] = pol
        return pol

    def policy(self, action, peer_id=None, strategy=None, rebalance=None, fee_ppm=None,
               tag=None, updates=None):
        if action == "list":
            return {"policies": list(self.policies.values()), "count": len(self.policies)}
        if action == "get":
            if not peer_id:
                return {"error": "Usage: revenue-policy get <peer_id>"}
            return {"policy": self._policy(peer_id)}
        if action == "set":
            if not peer_id:
                return {"error": "Usage: revenue-policy set <peer_id> [strategy=X] [fee_ppm=N]"}
            now = self.clock()
            recent = [t for t in self._changes.get(peer_id, []) if now - t < RATE_WINDOW]
            if len(recent) >= RATE_LIMIT:
                return {"status": "error", "error": "Rate limit exceeded: at most %d policy "
                        "changes per minute for %s" % (RATE_LIMIT, peer_id[:12])}
            try:
                pol = self._apply(peer_id, strategy, rebalance, fee_ppm)
            except ValueError as e:
                return {"status": "error", "error": str(e)}
            self._changes[peer_id] = recent + [now]
            return {"status": "success", "policy": pol,
                    "message": "Policy updated for peer %s..." % peer_id[:12]}
        if action == "batch":
            if isinstance(updates, str):
                try:
                    updates = json.loads(updates)
                except ValueError as e:
                    return {"error": "Invalid JSON in updates: %s" % e}
            if not isinstance(updates, list):
                return {"error": "updates must be a JSON array"}
            if len(updates) > BATCH_MAX:
                return {"status": "error", "error": "at most %d updates per batch" % BATCH_MAX}
            try:
                done = [self._apply(u["peer_id"], u.get("strategy"), u.get("rebalance_mode"),
                                    u.get("fee_ppm_target")) for u in updates]
            except (ValueError, KeyError, TypeError) as e:
                return {"status": "error", "error": str(e)}
            return {"status": "success", "updated": len(done), "policies": done,
                    "message": "Batch updated %d policies" % len(done)}
        if action == "delete":
            if self.policies.pop(peer_id, None) is None:
                return {"status": "noop", "message": "No policy existed for this peer"}
            return {"status": "success", "peer_id": peer_id}
        return {"error": "Unknown action: %s. Use 'list', 'get', 'set', 'delete', 'tag', "
                         "'untag', 'find', 'changes', or 'batch'" % action}

    def rebalance(self, from_channel, to_channel, amount_sats, max_fee_sats=None, force=False):
        if version_tuple(self.version) < (3, 0, 0) and not self.sling:
            return {"error": "Rebalancing disabled: sling plugin not found. Install sling."}
        try:
            amount = int(amount_sats)
        except (TypeError, ValueError):
            return {"error": "amount_sats must be an integer"}
        if amount < 1:
            return {"error": "amount_sats must be at least 1"}
        job = {"status": "initiated", "rebalance_id": next(self._ids), "from_channel": from_channel,
               "to_channel": to_channel, "amount_sats": amount, "max_fee_sats": max_fee_sats}
        self.rebalances.append(job)
        return job
