"""The hive's single event queue: one worker thread owns all machine state, so no two
triggers race. Hooks, RPC commands and the scheduler's ticks all become queue items.
After each item the worker drains the outbox (messages are sent only after the state
change that caused them has committed)."""
from __future__ import annotations

import functools
import queue
import threading
from collections import Counter
from concurrent.futures import Future
from typing import Callable

import structlog
from pyln.client import RpcError, RpcException

from handlers.dispatch import Dispatcher
from storage import outbox

log = structlog.get_logger("hive.engine")

MAX_SEND_ATTEMPTS = 8
OUTBOX_KEEP_SECONDS = 86400      # sent or abandoned messages are kept a day, for inspection
_STOP = object()


class Engine:
    def __init__(self, db, clock, config: Callable[[], object], lightning):
        self.db = db
        self.clock = clock
        self.config = config
        self.lightning = lightning
        self.dispatcher = Dispatcher(db, clock, config)
        self._queue: queue.Queue = queue.Queue()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.on_tick: list[Callable[[], None]] = []    # more work for each tick
        self.tick_failures: Counter[str] = Counter()   # failed tick steps, by step name

    # -- feeding the queue ---------------------------------------------------------
    def submit(self, fn: Callable[[], object]) -> Future:
        """Run `fn` on the worker; the future carries its result or exception."""
        fut: Future = Future()
        if self._stopping.is_set():
            fut.set_exception(RuntimeError("cl-hive is shutting down"))
            return fut
        self._queue.put((fn, fut))
        return fut

    # -- running ------------------------------------------------------------------
    def start(self) -> None:
        for name, target in (("hive-worker", self._work), ("hive-scheduler", self._schedule)):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 0.8) -> bool:
        """Stop both threads; True when they ended within `timeout` seconds."""
        self._stopping.set()
        self._queue.put(_STOP)
        per_thread = timeout / max(1, len(self._threads))
        for t in self._threads:
            t.join(per_thread)
        return not any(t.is_alive() for t in self._threads)

    def tick(self) -> None:
        """Fire every deadline that has passed, then the tick's other work. On the worker.
        Each step is isolated: one that fails (lightningd not answering a read) is logged
        and counted, and the later steps still run."""
        self._tick_step(self.dispatcher.fire_due)
        for fn in list(self.on_tick):
            self._tick_step(fn)
        self._tick_step(self._prune_outbox)

    def _prune_outbox(self) -> None:
        with self.db.transaction() as conn:
            outbox.prune_sent(conn, before=self.clock.now() - OUTBOX_KEEP_SECONDS)

    def _tick_step(self, fn: Callable[[], object]) -> None:
        name = _step_name(fn)
        try:
            fn()
        except (RpcError, OSError) as e:    # lightningd or a companion failed us: not our fault
            self.tick_failures[name] += 1
            log.warning("engine.tick_step_failed", step=name, error=str(e),
                        failures=self.tick_failures[name])
        except Exception as e:              # a fault, but the other steps still run
            self.tick_failures[name] += 1
            log.error("engine.tick_step_failed", step=name, error=repr(e),
                      failures=self.tick_failures[name], exc_info=True)

    def drain_outbox(self) -> int:
        """Send what is due; a failed send is retried with backoff, then abandoned."""
        sent = 0
        now = self.clock.now()
        for row in outbox.due(self.db.conn(), now):
            try:
                self.lightning.call("sendcustommsg", {"node_id": row["peer_id"],
                                                      "msg": row["msg_hex"]})
            except (RpcError, OSError) as e:
                attempts = row["attempts"] + 1
                give_up = attempts >= MAX_SEND_ATTEMPTS
                retry_at = None if give_up else now + min(300, 5 * 2 ** row["attempts"])
                with self.db.transaction() as conn:
                    outbox.mark_failed(conn, row["seq"], str(e), now, retry_at)
                log.warning("outbox.send_failed", peer_id=row["peer_id"], seq=row["seq"],
                            attempts=attempts, abandoned=give_up, error=str(e))
                continue
            with self.db.transaction() as conn:
                outbox.mark_sent(conn, row["seq"], now)
            sent += 1
        return sent

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            fn, fut = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                result = fn()
            except RpcException as e:   # the operator's bad input: answered, not a fault
                log.info("engine.command_refused", error=e.message, code=e.code)
                fut.set_exception(e)
            except Exception as e:  # a fault in one item must not stop the hive
                log.error("engine.item_failed", error=repr(e), exc_info=True)
                fut.set_exception(e)
            else:
                fut.set_result(result)
            if self._stopping.is_set():
                continue
            try:
                self.drain_outbox()
            except Exception as e:
                log.error("engine.outbox_failed", error=repr(e), exc_info=True)
        # Whatever is still queued is refused rather than silently dropped.
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                item[1].set_exception(RuntimeError("cl-hive is shutting down"))

    def _schedule(self) -> None:
        while not self._stopping.wait(self.config().tick_seconds):
            self.submit(self.tick)


def _step_name(fn) -> str:
    """A tick step's name for logs: the function behind a partial or bound method."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
