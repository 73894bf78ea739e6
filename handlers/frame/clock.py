"""The one source of time. Handlers and the scheduler ask a clock; tests drive one."""
from __future__ import annotations

import threading
import time


def unix(t: float | None) -> int | None:
    """A time as the operator sees it: whole Unix seconds (our clocks and deadlines keep
    fractions, which results never show)."""
    return None if t is None else int(t)


class SystemClock:
    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that moves only when told to, for tests and benchmarks."""

    def __init__(self, start: float = 1_700_000_000.0):
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._now += seconds
            return self._now
