"""One circuit breaker per companion: the declared `circuit_breaker` machine, persisted in
`circuit_breakers` and fired through the dispatcher like every other machine.

The handler only reports outcomes; the table decides: `failure` opens the breaker when
`failure_threshold_reached` (consecutive failures, counted in the instance's data, against
`hive-breaker-failure-threshold`), the deadline moves `open` to `half_open` after
`hive-breaker-reset-seconds`, and the probe's outcome closes or re-opens it.
Logs: one `warning` when it opens from closed, `info` when it closes; while it stays open
nothing is called, so nothing is logged per refused call."""
from __future__ import annotations

import structlog

log = structlog.get_logger("hive.bridge")

KIND = "circuit_breaker"


def ensure(ctx, name: str) -> None:
    if ctx.dispatcher.load(KIND, name) is None:
        ctx.dispatcher.create(KIND, name, data={"failures": 0})


def state(ctx, name: str) -> tuple[str, float, dict]:
    """(state, since, data) of the breaker."""
    inst = ctx.dispatcher.load(KIND, name)
    if inst is None:
        return "closed", 0.0, {"failures": 0}
    return inst.state, inst.state_since, inst.data


def record_success(ctx, name: str) -> None:
    current, _since, data = state(ctx, name)
    # A success in `closed` with no failures counted changes nothing: not fired, so the
    # transition log does not grow by one row per call.
    if current == "closed" and not data.get("failures"):
        return
    if current == "open":
        return      # a call made before it opened: only the probe may close it
    outcome = ctx.dispatcher.fire(KIND, name, "success", data_update={"failures": 0})
    if outcome.ok and outcome.source != "closed":
        log.info("bridge.breaker_closed", companion=name)


def record_failure(ctx, name: str, error: str) -> None:
    current, _since, data = state(ctx, name)
    if current == "open":
        return      # a late outcome of a call made before it opened: already counted
    failures = data.get("failures", 0) + 1
    outcome = ctx.dispatcher.fire(
        KIND, name, "failure", failures=failures,
        threshold=ctx.config().breaker_failure_threshold,
        data_update={"failures": failures, "last_error": error[:300]},
        context={"error": error[:300]})
    if not outcome.ok:
        return
    if outcome.source == "closed" and outcome.dest == "open":
        log.warning("bridge.breaker_opened", companion=name, failures=failures, error=error,
                    retry_in=ctx.config().breaker_reset_seconds)
    elif outcome.source == "half_open":
        log.info("bridge.probe_failed", companion=name, error=error)
