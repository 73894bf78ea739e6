"""What a committed local intent does, per intent type, and how to tell after a crash
whether it already happened. `before` notes what exists when execution starts (saved
with the `executing` state); `execute` returns a short result dict or raises
ExecutionFailed; `effect_exists` answers True, False, or None when it cannot tell."""
from __future__ import annotations

from pyln.client import RpcError

from handlers.wire.messages import REBALANCE_FIELDS
from handlers.bridge import revenue_ops
from handlers.bridge.pending import long_lightningd_call

CLOSED_STATES = ("ONCHAIN", "CLOSINGD_COMPLETE", "FUNDING_SPEND_SEEN", "AWAITING_UNILATERAL")


class ExecutionFailed(RuntimeError):
    pass


def _rpc(ctx, method, params):
    try:
        return ctx.lightning.call(method, params)
    except RpcError as e:
        message = e.error.get("message") if isinstance(e.error, dict) else str(e)
        raise ExecutionFailed(f"{method}: {message}") from None


def _channels_to(ctx, peer):
    chans = _rpc(ctx, "listpeerchannels", {"id": peer}).get("channels", [])
    return [c for c in chans if c.get("state") not in CLOSED_STATES]


class ChannelOpen:
    def before(self, ctx, intent):
        return {"channels": sorted(c.get("channel_id") or "" for c in
                                   _channels_to(ctx, intent["target"]))}

    def execute(self, ctx, intent):
        before = self.before(ctx, intent)
        return long_lightningd_call(
            ctx, "fundchannel", {"id": intent["target"], "amount": intent["amount_sat"]},
            shape=lambda res: {"txid": res.get("txid"), "channel_id": res.get("channel_id")},
            reconcile=lambda: {} if self.effect_exists(ctx, intent, before) else None)

    def effect_exists(self, ctx, intent, before):
        """A channel to the target that was not there when execution started."""
        if "channels" not in before:
            return None
        try:
            now = {c.get("channel_id") or "" for c in _channels_to(ctx, intent["target"])}
        except ExecutionFailed:
            return None
        return bool(now - set(before["channels"]))


class Rebalance:
    """Move `amount_sat` from the intent's `from_channel` into its `to_channel` (ours to
    the target), paying at most its `max_fee_sats`, through cl-revenue-ops (its Strategic
    Exemption applies to hive rebalances). The values are the signed intent's, as they are."""

    def before(self, ctx, intent):
        return {}

    def execute(self, ctx, intent):
        if any(intent.get(k) is None for k in REBALANCE_FIELDS):
            # Announced before intents carried their channels: nothing to run.
            raise ExecutionFailed("the intent carries no channels and fee cap")
        return revenue_ops.rebalance(ctx, intent["from_channel"], intent["to_channel"],
                                     intent["amount_sat"], intent["max_fee_sats"])

    def effect_exists(self, ctx, intent, before):
        return None    # cl-revenue-ops has no lookup by our intent: we cannot tell


EXECUTORS = {"channel_open": ChannelOpen(), "rebalance": Rebalance()}
NEEDS_AMOUNT = ("channel_open", "rebalance")
