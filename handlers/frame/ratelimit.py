"""The one rate limiter: a token bucket per key (usually a peer id), with a bounded number
of keys so a flood of identities cannot grow memory without bound."""
from __future__ import annotations

import threading
from collections import OrderedDict


class RateLimiter:
    def __init__(self, clock, rate_per_second: float, burst: int, max_keys: int = 4096):
        self.clock = clock
        self.rate = rate_per_second
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Take one token for `key`; False when its bucket is empty."""
        now = self.clock.now()
        with self._lock:
            tokens, last = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)     # forget the longest-idle key
            return allowed
