"""An answer that comes later: what an executor returns when its call runs on the bridge's
pool. The call's outcome settles it on the worker, and whoever waits (the intent lock)
then fires its trigger there, like any other event.

Without a bridge (handler tests that run no pool) the call is made at once, on the
caller's thread, and the Pending is settled before it is returned."""
from __future__ import annotations

from typing import Callable

from pyln.client import RpcError

from handlers.bridge.pool import TIMED_OUT, CallOutcome

Then = Callable[[dict | None, str | None], None]   # (result, None) or (None, why it failed)


class Pending:
    def __init__(self):
        self._outcome: tuple[dict | None, str | None] | None = None
        self._then: Then | None = None

    def then(self, fn: Then) -> None:
        if self._outcome is not None:
            fn(*self._outcome)
        else:
            self._then = fn

    def succeed(self, result: dict) -> None:
        self._settle((result, None))

    def fail(self, why: str) -> None:
        self._settle((None, why))

    def _settle(self, outcome) -> None:
        if self._outcome is not None:
            return                  # settled once; a late second report changes nothing
        self._outcome = outcome
        if self._then is not None:
            self._then(*outcome)


def long_lightningd_call(ctx, method: str, params: dict,
                         shape: Callable[[dict], dict],
                         reconcile: Callable[[], dict | None]) -> Pending:
    """`fundchannel`, `connect` and the like, off the worker. `shape(result)` makes the
    executor's result; after a timeout `reconcile()` says whether the effect is there
    (a result) or not (None): the call is never made again."""
    pending = Pending()
    if ctx.bridge is None:
        try:
            pending.succeed(shape(ctx.lightning.call(method, params)))
        except RpcError as e:
            error = e.error if isinstance(e.error, dict) else {"message": str(e.error)}
            pending.fail(f"{method}: {error.get('message')}")
        return pending

    def done(outcome: CallOutcome) -> None:
        if outcome.ok and isinstance(outcome.result, dict):
            return pending.succeed(shape(outcome.result))
        if outcome.status == TIMED_OUT:
            found = reconcile()
            if found is not None:
                return pending.succeed({**found, "reconciled": True})
            return pending.fail(f"{method} timed out and its effect is not there (yet); "
                                "not repeated")
        pending.fail(f"{method}: {outcome.error or 'answer is not an object'}")
    ctx.bridge.lightningd(ctx, method, params, done)
    return pending
