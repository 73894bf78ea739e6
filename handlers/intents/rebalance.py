"""What a rebalance intent carries, `revenue-rebalance`'s arguments: `from_channel`,
`to_channel` (ours to the intent's target) and `max_fee_sats`, present exactly in
rebalance intents (docs/PROTOCOL.md §6). Checked as the operator's parameters on
announce, and as a peer's record on receipt."""
from __future__ import annotations

from handlers.frame import errors
from handlers.intents.executors import CLOSED_STATES
from handlers.wire import messages


def problem(intent) -> str | None:
    """Why a (parsed) intent's rebalance fields do not fit its type, or None."""
    present = [k for k in messages.REBALANCE_FIELDS if k in intent]
    if intent["intent_type"] != "rebalance":
        return f"{present[0]} is not used by {intent['intent_type']}" if present else None
    missing = [k for k in messages.REBALANCE_FIELDS if k not in present]
    if missing:
        return f"{missing[0]} is required for rebalance"
    if intent["from_channel"] == intent["to_channel"]:
        return "to_channel is the same channel as from_channel"
    return None


def params(intent_type, given: dict) -> dict:
    """hive-intent's rebalance parameters, checked by format: {} for other types."""
    if intent_type != "rebalance":
        for name, value in given.items():
            if value is not None:
                raise errors.bad_param(name, f"not used by {intent_type}")
        return {}
    for name, value in given.items():
        if value is None:
            raise errors.bad_param(name, "required for rebalance")
        try:
            messages.INTENT[name](value)
        except ValueError as e:
            raise errors.bad_param(name, str(e)) from None
    if given["from_channel"] == given["to_channel"]:
        raise errors.bad_param("to_channel", "the same channel as from_channel")
    return dict(given)


def check_channels(ctx, target, carried: dict) -> None:
    """to_channel is an open channel of ours to the target, from_channel one of ours."""
    if not carried:
        return
    chans = ctx.lightning.call("listpeerchannels", {}).get("channels", [])
    peer_of = {c.get("short_channel_id"): c.get("peer_id") for c in chans
               if c.get("short_channel_id") and c.get("state") not in CLOSED_STATES}
    if peer_of.get(carried["to_channel"]) != target:
        raise errors.bad_param("to_channel", f"not an open channel of ours to {target}")
    if carried["from_channel"] not in peer_of:
        raise errors.bad_param("from_channel", "not an open channel of ours")
