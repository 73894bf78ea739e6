"""The forward_event intake. pyln calls notification handlers on its one main thread, so
`offer` checks an event and adds its amount to an in-memory sum per (in channel, out
channel, day): no I/O, no queue item per event, and at most `capacity` distinct sums
(beyond that an event is counted as dropped). The tick takes the sums and writes them in
one transaction (handlers.contribution.flow). A crash loses what was not yet flushed: at
most one tick of forwards."""
from __future__ import annotations

import re
import threading

import structlog

from handlers.frame.refusals import refusal_log

log = structlog.get_logger("hive.contribution")

SCID = re.compile(r"^[0-9]{1,10}x[0-9]{1,10}x[0-9]{1,5}$")
# No HTLC can carry more than every bitcoin there will ever be.
MAX_FORWARD_MSAT = 21_000_000 * 100_000_000 * 1000
CAPACITY = 20_000
NOT_COUNTED = ("offered", "failed", "local_failed")   # one forward emits several events


def day_of(t: float) -> int:
    """Days since the epoch (UTC)."""
    return int(t // 86400)


def parse(event) -> tuple[str, str, int] | str | None:
    """(in_channel, out_channel, msat) of a settled forward; None for an event that is
    not counted (not settled yet, or failed); a reason string for a malformed one."""
    if not isinstance(event, dict):
        return "not an object"
    status = event.get("status")
    if status in NOT_COUNTED:
        return None
    if status != "settled":
        return "unknown status"
    chans = event.get("in_channel"), event.get("out_channel")
    if not all(isinstance(c, str) and SCID.match(c) for c in chans):
        return "bad channel"
    amounts = event.get("in_msat"), event.get("out_msat")
    if not all(type(a) is int for a in amounts):
        return "bad amount"
    in_msat, out_msat = amounts
    if not 0 < out_msat <= in_msat <= MAX_FORWARD_MSAT:
        return "amount out of range"
    # The amount that went on, on both sides: our fee is ours, not either member's.
    return chans[0], chans[1], out_msat


class Ledger:
    def __init__(self, clock, capacity: int = CAPACITY):
        self.clock = clock
        self.capacity = capacity
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str, int], int] = {}
        self._dropped = 0
        self.counts = {"absorbed": 0, "dropped": 0, "ignored": 0}
        # The worker's channel map: short channel id -> peer id, read again after a
        # channel notification (`channels_changed`) or when a forward names a channel
        # it does not hold.
        self.peers: dict[str, str] = {}
        self.channels_stale = True
        self.last_read = float("-inf")

    def offer(self, event) -> None:
        """One forward_event, on pyln's main thread; never blocks on I/O, never grows
        past `capacity` sums."""
        parsed = parse(event)
        if parsed is None:
            return
        if isinstance(parsed, str):
            self.counts["ignored"] += 1
            refusal_log(log, "contribution.event_ignored", None, reason=parsed,
                        forward=str(event)[:200])
            return
        in_ch, out_ch, msat = parsed
        key = (in_ch, out_ch, day_of(self.clock.now()))
        with self._lock:
            if key in self._pending:
                self._pending[key] += msat
            elif len(self._pending) < self.capacity:
                self._pending[key] = msat
            else:
                self._dropped += 1
                return
        self.counts["absorbed"] += 1

    def channels_changed(self) -> None:
        """channel_opened / channel_state_changed: read the channel map at the next flush."""
        self.channels_stale = True

    def take(self) -> tuple[dict[tuple[str, str, int], int], int]:
        """The sums so far and the events dropped since the last take (the worker's)."""
        with self._lock:
            pending, self._pending = self._pending, {}
            dropped, self._dropped = self._dropped, 0
        self.counts["dropped"] += dropped
        return pending, dropped

    def stats(self) -> dict:
        with self._lock:
            pending = len(self._pending)
        return {**self.counts, "pending_sums": pending}
