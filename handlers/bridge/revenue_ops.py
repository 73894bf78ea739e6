"""cl-revenue-ops calls the executors make, through the bridge (breaker, pool, timeout)."""
from __future__ import annotations

from handlers.bridge.companions import REVENUE
from handlers.bridge.pending import Pending
from handlers.bridge.pool import TIMED_OUT, CallOutcome

REBALANCE_STARTED = ("success", "initiated", "pending")


def rebalance(ctx, from_channel: str, to_channel: str, amount_sats: int,
              max_fee_sats: int) -> Pending:
    """`revenue-rebalance`; an error body fails with its reason. Never retried: after a
    timeout cl-revenue-ops cannot be asked whether it started, so the intent fails."""
    pending = Pending()
    params = {"from_channel": from_channel, "to_channel": to_channel,
              "amount_sats": amount_sats, "max_fee_sats": max_fee_sats}

    def started(result) -> str | None:
        return None if result.get("status") in REBALANCE_STARTED else \
            f"unexpected answer: {str(result)[:120]}"

    def done(outcome: CallOutcome) -> None:
        if outcome.ok:
            res = outcome.result
            return pending.succeed({"rebalance_id": res.get("rebalance_id"),
                                    "status": res.get("status"), "from": from_channel,
                                    "to": to_channel, "max_fee_sats": params["max_fee_sats"]})
        if outcome.status == TIMED_OUT:
            return pending.fail("revenue-rebalance timed out; not repeated (cl-revenue-ops "
                                "cannot be asked whether it started)")
        pending.fail(f"revenue-rebalance: {outcome.error}")
    if ctx.bridge is None:
        pending.fail("revenue-rebalance: no bridge to cl-revenue-ops")
        return pending
    ctx.bridge.call(ctx, REVENUE, "revenue-rebalance", params, done, check=started)
    return pending
