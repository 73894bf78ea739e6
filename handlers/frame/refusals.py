"""The one way to log a refusal of peer input: `refusal_log(logger, event, peer_id, **fields)`.

A peer can repeat what we refuse as fast as it can send, so each (peer, event) pair gets
a burst of lines and then one per interval; the line that ends a quiet spell says how
many were held back (`suppressed`). Refusals are `info`: a peer can cause them, so they
are never faults.
"""
from __future__ import annotations

import threading

from handlers.frame.clock import SystemClock
from handlers.frame.ratelimit import RateLimiter

BURST = 5          # lines per (peer, event) before limiting starts
RATE = 1 / 60      # then one line a minute
MAX_KEYS = 4096


def new_limiter(clock, burst: int = BURST) -> RateLimiter:
    return RateLimiter(clock, RATE, burst, max_keys=MAX_KEYS)


LIMITER = new_limiter(SystemClock())
_suppressed: dict[str, int] = {}
_lock = threading.Lock()


def reset(clock=None, burst: int = BURST) -> None:
    """Forget every budget (tests start each case afresh, on their own clock; a test that
    reads every refusal's reason from the log raises `burst`)."""
    global LIMITER
    LIMITER = new_limiter(clock or SystemClock(), burst)
    with _lock:
        _suppressed.clear()


def suppressed(event: str, peer_id: str | None) -> int:
    """Lines of `event` for `peer_id` held back since the last one written."""
    with _lock:
        return _suppressed.get(f"{event}|{peer_id}", 0)


def refusal_log(logger, event: str, peer_id: str | None, **fields) -> bool:
    """Log `event` at info for `peer_id` unless that peer's budget for it is spent;
    True when a line was written."""
    key = f"{event}|{peer_id}"
    if not LIMITER.allow(key):
        with _lock:
            if len(_suppressed) >= MAX_KEYS and key not in _suppressed:
                _suppressed.clear()          # bounded, like the limiter's own keys
            _suppressed[key] = _suppressed.get(key, 0) + 1
        return False
    with _lock:
        held = _suppressed.pop(key, 0)
    if held:
        fields["suppressed"] = held
    logger.info(event, peer_id=peer_id, **fields)
    return True
