"""The bridge to cl-revenue-ops and CLBoss: detection, health checks, and every call to a
companion, through its circuit breaker and the bounded pool.

Detection (at start, at every probe of a half-open breaker, and while a companion is
missing, at every health check): the companion is the *active* plugin whose file is named
exactly `cl-revenue-ops` (`.py`) or `clboss` in `plugin list`, and its status command
answers: cl-revenue-ops with a version >= 1.4.0, whose capabilities follow (the `hive`
fee strategy below 3.0.0, `static` with fee_ppm=0 from 3.0.0). A missing companion is a
normal, degraded state: calls to it are refused at once and `hive-status` says why.

What counts against the breaker is the companion misbehaving: a JSON-RPC error (it died:
-4, or is gone: -32601), a timeout, or an answer that is not a JSON object. An error the
companion reports inside a well-formed result (cl-revenue-ops' way: `{"error": ...}` or
`status: error`, e.g. its rate limit) fails the call for the caller but shows the
companion is alive, so it counts as a success for the breaker.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

import structlog

from handlers.bridge import breaker
from handlers.bridge.pool import FAILED, REFUSED, CallOutcome, CallPool
from handlers.frame import errors
from handlers.frame.clock import unix

log = structlog.get_logger("hive.bridge")

REVENUE, CLBOSS, LIGHTNINGD = "cl-revenue-ops", "clboss", "lightningd"
# hive-join's connect has a lane of its own: detection's `plugin list` calls (two at
# start) would otherwise fill the lightningd lane and refuse a join made just then.
JOIN_LANE = "lightningd-connect"
STATUS_METHOD = {REVENUE: "revenue-status", CLBOSS: "clboss-status"}
MIN_REVENUE_VERSION = (1, 4, 0)
HIVE_STRATEGY_REMOVED = (3, 0, 0)
CLBOSS_TAGS = ("lnfee", "open", "close", "balance")
# The work each companion does for the hive: an action of these kinds runs through it.
NEEDED_BY = {"rebalance": REVENUE, "clboss_ignore": CLBOSS}

Check = Callable[[object], "str | None"]


def parse_version(text) -> tuple[int, int, int] | None:
    if not isinstance(text, str):
        return None
    parts = text.strip().lstrip("v").split("-")[0].split(".")
    try:
        nums = [int(p) for p in parts[:3]]
    except ValueError:
        return None
    return tuple(nums + [0] * (3 - len(nums))) if nums else None


def revenue_capabilities(version: tuple[int, int, int]) -> dict:
    if version < HIVE_STRATEGY_REMOVED:
        return {"fleet_fee": {"strategy": "hive"}, "release": {"strategy": "passive"},
                "rebalance": True}
    return {"fleet_fee": {"strategy": "static", "fee_ppm": 0},
            "release": {"strategy": "passive"}, "rebalance": True}


def plugin_active(listing, name: str) -> bool:
    """The active plugin named exactly `name` (or `name.py`): never a substring match."""
    plugins = listing.get("plugins") if isinstance(listing, dict) else None
    for p in plugins if isinstance(plugins, list) else []:
        if not isinstance(p, dict) or not isinstance(p.get("name"), str):
            continue
        if p.get("active") and os.path.basename(p["name"]) in (name, name + ".py"):
            return True
    return False


def body_error(result) -> str | None:
    """cl-revenue-ops reports failures inside successful results."""
    if isinstance(result, dict):
        if result.get("status") == "error" or "error" in result:
            return str(result.get("error") or result.get("message") or "status: error")
    return None


def require(ctx, kind: str) -> None:
    """Refuse, with COMPANION_UNAVAILABLE, an operator's decision to run work of `kind`
    now when the companion it runs through would refuse the call: approving it would
    only record a failure, and the action can be approved again once the companion is
    back. Handler tests without a bridge (ctx.bridge None) check nothing here; the
    executor refuses there instead."""
    name = NEEDED_BY.get(kind)
    if name is None or ctx.bridge is None:
        return
    why = ctx.bridge.available(ctx, name)
    if why is not None:
        raise errors.OperatorError(f"{kind} runs through {name}, which cannot be called now: "
                                   f"{why}", errors.COMPANION_UNAVAILABLE, companion=name,
                                   reason=why)


@dataclass
class Companion:
    name: str
    detected: bool = False
    version: str | None = None
    capabilities: dict = field(default_factory=dict)
    reason: str | None = "not checked yet"
    last_error: str | None = None
    last_error_at: float | None = None
    calls: int = 0
    failures: int = 0
    probing: bool = False
    checked_at: float = float("-inf")
    # Detections in a row that found it missing: at lightningd's start a companion may
    # not be active yet when we first look, so one miss alone proves little.
    misses: int = 0


class Bridge:
    def __init__(self, pool: CallPool):
        self.pool = pool
        self.companions = {n: Companion(n) for n in (REVENUE, CLBOSS)}
        # Called on the worker as fn(ctx, name) when a companion is (re)detected.
        self.on_detected: list[Callable[[object, str], None]] = []
        # Called on the worker as fn(ctx) at the end of every tick (the fee sweep).
        self.after_tick: list[Callable[[object], None]] = []
        # Scratch state of the bridge's parts (e.g. the fee sweep in progress); in memory.
        self.state: dict[str, dict] = {}
        self._turns: dict[str, list[Callable[[Callable[[], None]], None]]] = {}

    def in_turn(self, key: str, op: Callable[[Callable[[], None]], None]) -> None:
        """Run `op(done)` once every earlier op of `key` has called its `done`: for
        read-modify-write sequences (CLBoss' tag sets) that must not interleave."""
        queue = self._turns.setdefault(key, [])
        queue.append(op)
        if len(queue) == 1:
            self._next_turn(key)

    def _next_turn(self, key: str) -> None:
        queue = self._turns[key]
        if not queue:
            return
        finished = []

        def done() -> None:
            if finished:
                return          # called twice: the turn is already over
            finished.append(True)
            queue.pop(0)
            self._next_turn(key)
        queue[0](done)

    # -- lifecycle ---------------------------------------------------------------------
    def start(self, ctx) -> None:
        for name in self.companions:
            breaker.ensure(ctx, name)
            self._check_now(ctx, name)

    def on_tick(self, ctx) -> None:
        now = ctx.clock.now()
        self.pool.expire(now)
        for name, comp in self.companions.items():
            state, _since, _data = breaker.state(ctx, name)
            if comp.probing:
                continue
            if state == "half_open":
                self._detect(ctx, name, probe=True)
            elif state == "closed" and now - comp.checked_at >= ctx.config().bridge_check_seconds:
                self._check_now(ctx, name)
        for fn in self.after_tick:
            fn(ctx)

    def _check_now(self, ctx, name) -> None:
        comp = self.companions[name]
        if comp.probing:
            return          # a detection is already under way
        comp.checked_at = ctx.clock.now()
        if not comp.detected:
            self._detect(ctx, name, probe=False)
        elif not self.pool.waiting(name):
            self.call(ctx, name, STATUS_METHOD[name], {}, self._status_checked(ctx, name),
                      check=self._status_shape(name))

    # -- calls -------------------------------------------------------------------------
    def available(self, ctx, name: str) -> str | None:
        """None when a call to `name` would be made now, else why it would be refused."""
        comp = self.companions[name]
        if not comp.detected:
            return f"{name} not detected: {comp.reason}"
        state, since, _ = breaker.state(ctx, name)
        if state != "closed":
            return f"{name} circuit breaker is {state} (since {int(since)})"
        return None

    def call(self, ctx, name: str, method: str, params: dict,
             on_done: Callable[[CallOutcome], None], check: Check | None = None,
             probe: bool = False) -> None:
        """Call a companion; `on_done(outcome)` runs on the worker, perhaps at once (a
        refusal). `check(result)` may name what is wrong with a well-formed answer."""
        if not probe:
            why = self.available(ctx, name)
            if why is not None:
                on_done(CallOutcome(REFUSED, method, error=why))
                return
        comp = self.companions[name]
        comp.calls += 1

        def done(outcome: CallOutcome) -> None:
            companion_fault = None
            if outcome.ok and not isinstance(outcome.result, dict):
                companion_fault = f"garbage answer: {str(outcome.result)[:80]!r}"
                outcome = CallOutcome(FAILED, method, result=outcome.result, error=companion_fault)
            elif not outcome.ok:
                companion_fault = outcome.error
            if companion_fault is not None:
                comp.failures += 1
                comp.last_error, comp.last_error_at = f"{method}: {companion_fault}", ctx.clock.now()
                if not probe:
                    breaker.record_failure(ctx, name, f"{method}: {companion_fault}")
            else:
                if not probe:
                    breaker.record_success(ctx, name)
                why = body_error(outcome.result) or (check(outcome.result) if check else None)
                if why is not None:
                    comp.last_error, comp.last_error_at = f"{method}: {why}", ctx.clock.now()
                    outcome = CallOutcome(FAILED, method, result=outcome.result, error=why)
            on_done(outcome)

        self.pool.start(name, method, params, ctx.clock.now() + ctx.config().bridge_timeout_seconds,
                        done)

    def lightningd(self, ctx, method: str, params: dict,
                   on_done: Callable[[CallOutcome], None], lane: str = LIGHTNINGD) -> None:
        """A long lightningd call (fundchannel, connect, setchannel, plugin list): off the
        worker with the same timeout; no breaker (lightningd is not optional)."""
        self.pool.start(lane, method, params,
                        ctx.clock.now() + ctx.config().bridge_timeout_seconds, on_done)

    # -- detection -----------------------------------------------------------------------
    def _status_shape(self, name) -> Check:
        def check(result) -> str | None:
            if name != REVENUE:
                return None
            version = parse_version(result.get("version"))
            if version is None:
                return f"revenue-status has no version: {str(result)[:80]}"
            if version < MIN_REVENUE_VERSION:
                return f"version {result.get('version')} is older than 1.4.0"
            return None
        return check

    def _status_checked(self, ctx, name):
        def done(outcome: CallOutcome) -> None:
            if outcome.ok and name == REVENUE:
                self._found(ctx, name, outcome.result)
        return done

    def _detect(self, ctx, name: str, probe: bool) -> None:
        comp = self.companions[name]
        comp.probing = True

        def finish(ok: bool, why: str | None, status: dict | None = None) -> None:
            comp.probing = False
            if probe:
                if ok:
                    breaker.record_success(ctx, name)
                else:
                    breaker.record_failure(ctx, name, f"probe: {why}")
            if ok:
                self._found(ctx, name, status)
            else:
                self._lost(ctx, name, why)

        def listed(outcome: CallOutcome) -> None:
            if not outcome.ok:
                return finish(False, f"plugin list: {outcome.error}")
            if not plugin_active(outcome.result, name):
                return finish(False, "not running (no active plugin of that name)")
            self.call(ctx, name, STATUS_METHOD[name], {}, status, check=self._status_shape(name),
                      probe=True)

        def status(outcome: CallOutcome) -> None:
            if not outcome.ok:
                return finish(False, f"{outcome.method}: {outcome.error}")
            finish(True, None, outcome.result)

        self.lightningd(ctx, "plugin", {"subcommand": "list"}, listed)

    def _found(self, ctx, name: str, status: dict) -> None:
        comp = self.companions[name]
        was = (comp.detected, comp.version)
        comp.detected, comp.reason, comp.misses = True, None, 0
        if name == REVENUE:
            comp.version = status.get("version")
            comp.capabilities = revenue_capabilities(parse_version(comp.version))
        else:
            info = status.get("info")
            comp.version = info.get("version") if isinstance(info, dict) else None
            comp.capabilities = {"unmanage_tags": list(CLBOSS_TAGS)}
        if was != (True, comp.version):
            log.info("bridge.companion_detected", companion=name, version=comp.version,
                     capabilities=comp.capabilities)
            for fn in self.on_detected:
                fn(ctx, name)

    def _lost(self, ctx, name: str, why: str) -> None:
        comp = self.companions[name]
        if comp.detected or comp.reason != why:
            log.info("bridge.companion_missing", companion=name, reason=why)
        comp.detected, comp.reason = False, why
        comp.misses += 1

    # -- the operator's view ---------------------------------------------------------------
    def view(self, ctx) -> dict:
        out = {}
        for name, comp in self.companions.items():
            state, since, data = breaker.state(ctx, name)
            out[name] = {"detected": comp.detected, "version": comp.version,
                         "capabilities": comp.capabilities, "missing_reason": comp.reason,
                         "breaker": {"state": state, "since": unix(since),
                                     "consecutive_failures": data.get("failures", 0)},
                         "last_error": comp.last_error, "last_error_at": unix(comp.last_error_at),
                         "calls": comp.calls, "failures": comp.failures,
                         "calls_unanswered": self.pool.taken(name)}
        return out
