"""What every handler is given: storage, the dispatcher, the door to lightningd, the
clock and the current configuration. Built once by the engine; handlers hold no state."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from handlers.frame.dispatch import Dispatcher
from handlers.frame.ratelimit import RateLimiter


@dataclass
class Context:
    db: object
    dispatcher: Dispatcher
    lightning: object
    clock: object
    config: Callable[[], object]
    hello_limiter: RateLimiter
    sync_limiter: RateLimiter
    full_sync_limiter: RateLimiter
    # Proposals, votes and decisions each cost signature checks: a few, then a few a second.
    council_limiter: RateLimiter
    # JOIN_REFUSED answers, across all peers (handlers.membership.admit.refuse_join); None
    # where a test leaves them unlimited.
    join_refusal_limiter: RateLimiter | None = None
    # In-memory timers and flags of the tick's own work (lost on restart, which only
    # means one early sync or broadcast).
    timers: dict = field(default_factory=dict)
    # Sends what the outbox holds now (the engine's drain); None where a test moves
    # messages itself.
    drain: Callable[[], object] | None = None
    # The bridge to the companion plugins (handlers.bridge.companions.Bridge); None where
    # a test runs handlers without one.
    bridge: object | None = None
    # Custom notifications to other plugins (handlers.frame.effects.Notifier); None where a
    # test runs handlers without one.
    notifier: object | None = None
    _node_id: str | None = field(default=None, repr=False)

    @property
    def node_id(self) -> str:
        """Our node id, asked of lightningd once (on the worker, after init)."""
        if self._node_id is None:
            self._node_id = self.lightning.call("getinfo", {})["id"]
        return self._node_id

    @property
    def known_node_id(self) -> str | None:
        """Our node id if already known, without asking lightningd (None until then)."""
        return self._node_id

    def every(self, name: str, seconds: float) -> bool:
        """True at most once per `seconds` for the tick work `name` (the first time at once;
        in memory, so a restart only runs it once early)."""
        now = self.clock.now()
        last = self.timers.get(name)
        if last is not None and now - last < seconds:
            return False
        self.timers[name] = now
        return True

    def now(self) -> int:
        return int(self.clock.now())
