"""What a committed local intent does, per intent type, and how to tell after a crash
whether it already happened. `before` notes what exists when execution starts (saved
with the `executing` state); `execute` returns a short result dict or raises
ExecutionFailed; `effect_exists` answers True, False, or None when it cannot tell."""
from __future__ import annotations

from pyln.client import RpcError

from handlers.wire.messages import REBALANCE_FIELDS
from handlers.bridge import revenue_ops
from handlers.bridge.pending import Pending, long_lightningd_call
from storage import hivemap
from storage import planner as planner_store

OPENING_STATES = ("OPENINGD", "CHANNELD_AWAITING_LOCKIN", "DUALOPEND_OPEN_INIT",
                  "DUALOPEND_OPEN_COMMITTED", "DUALOPEND_OPEN_COMMIT_READY",
                  "DUALOPEND_AWAITING_LOCKIN")
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


def _fleet_channel(ctx, target) -> str | None:
    """Why no member should open to `target` now: the planner holds it saturated, or
    another member's HiveMap state shows a channel to it."""
    conn = ctx.db.conn()
    if planner_store.is_saturated(conn, target):
        return "the target is saturated: the fleet holds enough of its capacity (hive-plan)"
    for entry in hivemap.all_entries(conn):
        state = entry["state"]
        if state["peer_id"] != ctx.node_id and any(
                p["peer_id"] == target for p in state.get("peers", ())):
            return f"member {state['peer_id']} has a channel to the target now"
    return None


def _opening(ctx, target) -> str | None:
    """A channel of ours to `target` still being opened appeared since the intent (an
    open outside the hive); an established one is the operator's own choice."""
    for c in _channels_to(ctx, target):
        if c.get("state") in OPENING_STATES:
            return f"a channel to the target is being opened already ({c.get('state')})"
    return None


class ChannelOpen:
    def before(self, ctx, intent):
        return {"channels": sorted(c.get("channel_id") or "" for c in
                                   _channels_to(ctx, intent["target"]))}

    def execute(self, ctx, intent):
        """Just before funding: not to a saturated target, and not when the fleet has a
        channel to it now (one may have appeared since the intent was announced). Then
        connect (a no-op when connected; by the node's announced addresses otherwise)
        and fund, both off the worker."""
        before = self.before(ctx, intent)
        why = _fleet_channel(ctx, intent["target"]) or _opening(ctx, intent["target"])
        if why is not None:
            raise ExecutionFailed(why)
        out = Pending()

        def fund(_res, why):
            if why is not None:
                return out.fail(f"cannot reach the target: {why}")
            long_lightningd_call(
                ctx, "fundchannel", {"id": intent["target"], "amount": intent["amount_sat"]},
                shape=lambda res: {"txid": res.get("txid"), "channel_id": res.get("channel_id")},
                reconcile=lambda: {} if self.effect_exists(ctx, intent, before) else None
            ).then(lambda res, why: out.succeed(res) if why is None else out.fail(why))
        long_lightningd_call(ctx, "connect", {"id": intent["target"]}, shape=lambda res: {},
                             reconcile=lambda: None).then(fund)
        return out

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
