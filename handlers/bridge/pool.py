"""A small bounded pool for calls that can take long (companion plugins, fundchannel,
connect, setchannel), so the worker never waits on one.

A call runs `lightning.call` on a pool thread; its answer comes back to the worker as a
closure handed to `deliver` (the engine's queue), like any other input. Timeouts are
judged on the worker, against the clock, at each tick (`expire`): a call past its
deadline is reported `timed_out` at once, and its thread stays taken until lightningd
answers (a dead companion is answered -4 by lightningd). So that hung calls cannot take
every thread, each lane (a companion, or lightningd) may hold at most `per_lane` calls,
answered or not; beyond that a call is refused without being made.

Every in-flight record is touched on the worker only; pool threads only call and deliver.
"""
from __future__ import annotations

import itertools
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable

import structlog
from pyln.client import RpcError

log = structlog.get_logger("hive.bridge")

SUCCEEDED, FAILED, TIMED_OUT, REFUSED = "succeeded", "failed", "timed_out", "refused"
# Two per companion, two for lightningd's long calls, two for connect, two for the
# governance oracle's HTTP calls, two for the planner's graph reads.
POOL_SIZE = 12
PER_LANE = 2


@dataclass(frozen=True)
class CallOutcome:
    """How one bridge call ended. `result` is the answer's body when it succeeded;
    `error` says why not (also for a refusal, which never reached the callee)."""
    status: str
    method: str
    result: object = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == SUCCEEDED


@dataclass
class _Call:
    id: int
    lane: str
    method: str
    params: dict
    deadline: float
    on_done: Callable[[CallOutcome], None]
    run: Callable[[], object] | None = None
    timed_out: bool = False
    extra: dict = field(default_factory=dict)


class CallPool:
    def __init__(self, lightning, deliver: Callable[[Callable[[], None]], object],
                 size: int = POOL_SIZE, per_lane: int = PER_LANE):
        self.lightning = lightning
        self.deliver = deliver
        self.per_lane = per_lane
        # Daemon threads of our own, not a ThreadPoolExecutor: its threads are joined at
        # interpreter exit, so one call hung in a companion would keep the plugin alive.
        self._queue: queue.Queue = queue.Queue()
        self._threads = [threading.Thread(target=self._serve, name=f"hive-bridge-{i}",
                                          daemon=True) for i in range(size)]
        for t in self._threads:
            t.start()
        self._ids = itertools.count(1)
        self.inflight: dict[int, _Call] = {}
        # Outcomes the worker's queue would not take (full, or stopping): run at the next
        # tick instead, so no caller waits forever for an answer that came.
        self._undelivered: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def taken(self, lane: str) -> int:
        """Threads this lane holds: calls not yet answered, timed out or not."""
        # A copy: a read-only view may count from another thread than the worker.
        return sum(1 for c in list(self.inflight.values()) if c.lane == lane)

    def waiting(self, lane: str) -> int:
        """Calls of this lane still waiting for their outcome (not yet timed out)."""
        return sum(1 for c in list(self.inflight.values()) if c.lane == lane and not c.timed_out)

    def start(self, lane: str, method: str, params: dict, deadline: float,
              on_done: Callable[[CallOutcome], None],
              run: Callable[[], object] | None = None) -> None:
        """On the worker. `on_done` runs on the worker exactly once: with the answer, a
        timeout, or at once with a refusal when the lane is full. With `run`, the pool
        thread calls `run()` (e.g. an HTTP request) instead of lightningd's `method`."""
        if self.taken(lane) >= self.per_lane:
            on_done(CallOutcome(REFUSED, method, error=f"{lane}: {self.per_lane} calls still "
                                                       "unanswered"))
            return
        call = _Call(next(self._ids), lane, method, dict(params or {}), deadline, on_done, run)
        self.inflight[call.id] = call
        self._queue.put(call)

    def _serve(self) -> None:
        while True:
            call = self._queue.get()
            if call is None:
                return
            self._run(call)

    def _run(self, call: _Call) -> None:
        """On a pool thread: make the call, hand the answer to the worker."""
        try:
            result = call.run() if call.run is not None else \
                self.lightning.call(call.method, call.params)
        except RpcError as e:
            error = e.error if isinstance(e.error, dict) else {"message": str(e.error)}
            outcome = CallOutcome(FAILED, call.method, error=f"{error.get('code')}: "
                                                              f"{error.get('message')}")
        except OSError as e:      # lightningd's socket is gone: shutting down
            outcome = CallOutcome(FAILED, call.method, error=f"rpc socket: {e}")
        except Exception as e:    # a fault of ours: report it, and still end the call
            log.error("bridge.call_fault", method=call.method, error=repr(e), exc_info=True)
            outcome = CallOutcome(FAILED, call.method, error=f"fault: {e!r}")
        else:
            outcome = CallOutcome(SUCCEEDED, call.method, result=result)
        fn = lambda: self._answered(call.id, outcome)      # noqa: E731
        try:
            handed = self.deliver(fn)
        except Exception as e:      # a full or stopping queue: kept for the next tick
            handed = e
        if isinstance(handed, Exception) or (isinstance(handed, Future) and handed.done()
                                              and handed.exception() is not None):
            with self._lock:
                self._undelivered.append(fn)

    def _answered(self, call_id: int, outcome: CallOutcome) -> None:
        call = self.inflight.pop(call_id, None)
        if call is None:
            return
        if call.timed_out:
            # Already reported as timed out; the late answer is not acted on (whoever
            # called reconciles the effect instead of trusting either report).
            log.info("bridge.late_answer", lane=call.lane, method=call.method,
                     status=outcome.status)
            return
        call.on_done(outcome)

    def expire(self, now: float) -> int:
        """On the worker, at each tick: report every call past its deadline as timed out."""
        with self._lock:
            late, self._undelivered = self._undelivered, []
        for fn in late:
            fn()
        due = [c for c in self.inflight.values() if not c.timed_out and now >= c.deadline]
        for call in due:
            call.timed_out = True
            call.on_done(CallOutcome(TIMED_OUT, call.method,
                                     error="no answer within the timeout"))
        return len(due)

    def shutdown(self) -> None:
        """Stop taking calls; hung threads are left to die with the process."""
        for _ in self._threads:
            self._queue.put(None)
