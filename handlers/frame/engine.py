"""The hive's single event queue: one worker thread owns all machine state, so no two
triggers race. Hooks, RPC commands and the scheduler's ticks all become queue items.
After each item the worker drains the outbox (messages are sent only after the state
change that caused them has committed).

Peer input queued in a row is applied as a batch, in one transaction. Its `prepare`
steps run first, on the worker, and gather what the batch will ask lightningd (the
signature checks of GOSSIP); an asking thread sends those questions together while the
worker applies the batch before it, so lightningd is never idle waiting for us.

The worker can be held up by a slow call to lightningd or a companion (each has a
timeout, see `effects`), so the queue is bounded (`workqueue`), ticks coalesce (at most
one waits), and read-only commands run on a reader thread of their own: SQLite gives
each thread its own connection, and WAL readers never wait for the writer."""
from __future__ import annotations

import functools
import threading
from collections import Counter
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from contextlib import nullcontext
from typing import Callable, ContextManager

import structlog
from pyln.client import RpcError, RpcException

from handlers.frame.dispatch import Dispatcher
from handlers.frame.ratelimit import RateLimiter
from handlers.frame.workqueue import Item, WorkQueue
from storage import outbox

log = structlog.get_logger("hive.engine")

MAX_SEND_ATTEMPTS = 8
OUTBOX_PAGE = 100                # outbox rows read at once while draining
OUTBOX_KEEP_SECONDS = 86400      # sent or abandoned messages are kept a day, for inspection
# Items waiting for the worker before peer messages are dropped: what the per-peer rate
# limits let a full hive send in several seconds.
MAX_QUEUE = 2000
# Peer items the worker applies in one transaction (one commit synced to disk): enough to
# amortize the sync under a burst, few enough that each waits little for the commit.
MAX_BATCH = 64


def _no_gather(_asker) -> ContextManager:
    return nullcontext()


class Engine:
    def __init__(self, db, clock, config: Callable[[], object], lightning,
                 max_queue: int = MAX_QUEUE,
                 gather: Callable[[ThreadPoolExecutor], ContextManager] = _no_gather):
        self.db = db
        self.clock = clock
        self.config = config
        self.lightning = lightning
        self.dispatcher = Dispatcher(db, clock, config)
        self._queue = WorkQueue(max_queue)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hive-reader")
        # The block a batch's `prepare` steps run in: what they ask lightningd ahead is
        # asked when it ends, all at once, on the asking thread (Prefetching.gather).
        self.gather = gather
        self._asker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hive-ask")
        self._tick_lock = threading.Lock()
        self._tick_queued = False
        self.on_tick: list[Callable[[], None]] = []    # more work for each tick
        self.tick_failures: Counter[str] = Counter()   # failed tick steps, by step name
        self.dropped = 0                               # peer items dropped, queue full
        self._drop_log = RateLimiter(clock, 0.1, 1)    # one queue_full warning per 10 s

    # -- feeding the queue ---------------------------------------------------------
    def submit(self, fn: Callable[[], object], *, droppable: bool = False,
               prepare: Callable[[], object] | None = None) -> Future:
        """Run `fn` on the worker; the future carries its result or exception.
        `droppable` marks peer input, which a full queue drops (oldest first); an
        operator's command is never dropped."""
        fut: Future = Future()
        if self._stopping.is_set():
            fut.set_exception(RuntimeError("cl-hive is shutting down"))
            return fut
        item = Item(fn, fut, droppable, prepare)
        try:
            dropped = self._queue.put(item)
        except RuntimeError as e:
            fut.set_exception(e)
            return fut
        if dropped is not None:
            self.dropped += 1
            dropped.future.cancel()
            if self._drop_log.allow("queue_full"):
                log.warning("engine.queue_full", waiting=len(self._queue),
                            dropped_total=self.dropped)
        return fut

    def schedule_tick(self) -> bool:
        """Queue a tick unless one is already waiting (ticks behind a slow call coalesce:
        one tick fires everything due). True if a tick was queued."""
        with self._tick_lock:
            if self._tick_queued:
                return False
            self._tick_queued = True
        fut = self.submit(self._run_tick)
        if fut.done():            # refused: shutting down
            with self._tick_lock:
                self._tick_queued = False
            return False
        return True

    def _run_tick(self) -> None:
        with self._tick_lock:
            self._tick_queued = False     # from here a new tick may wait behind this one
        self.tick()

    def read(self, fn: Callable[[], object]) -> Future:
        """Run a read-only `fn` on the reader thread, never behind the worker. It must
        only read SQLite (through `db.conn()`, its own connection) and pure data."""
        try:
            if self._stopping.is_set():
                raise RuntimeError("cl-hive is shutting down")
            return self._reader.submit(_contained, fn)
        except RuntimeError as e:       # also the executor's own refusal after shutdown
            fut: Future = Future()
            fut.set_exception(RuntimeError(str(e)))
            return fut

    def stats(self) -> dict:
        """For hive-status: what waits, what was dropped, which tick steps failed."""
        return {"queued": len(self._queue), "dropped": self.dropped,
                "tick_failures": dict(self.tick_failures)}

    # -- running ------------------------------------------------------------------
    def start(self) -> None:
        for name, target in (("hive-worker", self._work), ("hive-scheduler", self._schedule)):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 0.8) -> bool:
        """Stop both threads; True when they ended within `timeout` seconds. What still
        waits in the queue is refused rather than silently dropped."""
        self._stopping.set()
        for item in self._queue.close():
            item.future.set_exception(RuntimeError("cl-hive is shutting down"))
        self._reader.shutdown(wait=False, cancel_futures=True)
        self._asker.shutdown(wait=False, cancel_futures=True)
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
        """Send what is due, OUTBOX_PAGE rows at a time, until nothing is due or peer input
        waits (served first: the worker drains again after each batch). A broadcast to
        1,000 members is sent at once, not a page now and the rest after the next tick. A
        failed send is retried with backoff, then abandoned. Never inside a transaction (a
        batch of peer messages): what it would send is not committed yet, and the worker
        sends it after the commit."""
        if self.db.conn().in_transaction:
            return 0
        sent = 0
        now = self.clock.now()
        while True:
            rows = outbox.due(self.db.conn(), now, OUTBOX_PAGE)
            for row in rows:
                # A shutdown may close the database during a long drain (many rows to
                # offline members): stop before the next row, and after a send whose
                # outcome can no longer be recorded (the row stays due: it is sent again
                # after the restart).
                if self._stopping.is_set():
                    return sent
                try:
                    self.lightning.call("sendcustommsg", {"node_id": row["peer_id"],
                                                          "msg": row["msg_hex"]})
                except (RpcError, OSError) as e:
                    if self._stopping.is_set():
                        return sent
                    attempts = row["attempts"] + 1
                    give_up = attempts >= MAX_SEND_ATTEMPTS
                    retry_at = None if give_up else now + min(300, 5 * 2 ** row["attempts"])
                    with self.db.transaction() as conn:
                        outbox.mark_failed(conn, row["seq"], str(e), now, retry_at)
                    log.warning("outbox.send_failed", peer_id=row["peer_id"], seq=row["seq"],
                                attempts=attempts, abandoned=give_up, error=str(e))
                    continue
                if self._stopping.is_set():
                    return sent
                # One statement outside any transaction commits on its own (autocommit): no
                # BEGIN and COMMIT around it, for every message a broadcast sends.
                outbox.mark_sent(self.db.conn(), row["seq"], now)
                sent += 1
            if len(rows) < OUTBOX_PAGE or len(self._queue):
                return sent

    def _work(self) -> None:
        ahead = None            # the next batch of peer input, its questions already out
        while True:
            if ahead is None:
                batch = self._queue.get_batch(MAX_BATCH)
                if batch is None:
                    return
                batch = _started(batch)
                asked = self._prepare(batch)
            else:
                (batch, asked), ahead = ahead, None
            if len(batch) == 1 and not batch[0].droppable:
                self._await(asked)
                self._settle(batch[0], *_run(batch[0]))
            elif batch:
                # The peer input queued behind this batch is prepared now: lightningd
                # answers its questions while this batch waits for its own and is applied.
                following = _started(self._queue.more(MAX_BATCH))
                if following:
                    ahead = (following, self._prepare(following))
                self._await(asked)
                self._run_batch(batch)
            if self._stopping.is_set():
                continue
            try:
                self.drain_outbox()
            except Exception as e:
                log.error("engine.outbox_failed", error=repr(e), exc_info=True)

    def _run_batch(self, batch: list[Item]) -> None:
        """Peer input drained at once, applied in one transaction: one commit (one sync to
        disk) for all of it. Each item runs in a savepoint of its own, so one that fails
        is rolled back alone. Nothing acts on what an item changed before the commit:
        messages wait in the outbox (sent after it), and log lines and observers run as
        after-commit callbacks; if the commit fails, none of the batch happened."""
        done = []
        try:
            with self.db.transaction():
                for item in batch:
                    done.append((item, *_run(item, savepoint=self.db.transaction)))
        except Exception as e:      # the commit itself failed: nothing of the batch holds
            log.error("engine.batch_failed", items=len(batch), error=repr(e), exc_info=True)
            for item in batch:
                item.future.set_exception(e)
            return
        for item, result, error in done:
            self._settle(item, result, error)

    def _prepare(self, batch: list[Item]):
        """The items' `prepare` steps, one after another, inside `gather`: the questions
        they ask lightningd ahead (a signature check per GOSSIP) go out together when it
        ends, on the asking thread, so a burst costs one round trip, not one per message.
        Returns what `_await` waits for. A step that fails, or asking that fails, only
        loses the head start: the item does the work itself."""
        steps = [item.prepare for item in batch if item.prepare is not None]
        if not steps:
            return None
        try:
            with self.gather(self._asker) as asked:
                for step in steps:
                    try:
                        step()
                    except (RpcError, OSError) as e:
                        log.debug("engine.prepare_failed", error=str(e))
                    except Exception as e:
                        log.warning("engine.prepare_failed", error=repr(e), exc_info=True)
            return asked
        except (RpcError, OSError, RuntimeError) as e:     # RuntimeError: shutting down
            log.debug("engine.prepare_failed", error=str(e))
        except Exception as e:
            log.warning("engine.prepare_failed", error=repr(e), exc_info=True)
        return None

    @staticmethod
    def _await(asked) -> None:
        """Until the answers to a batch's questions are kept (or asking failed)."""
        if asked is None:
            return
        try:
            asked.wait()
        except (RpcError, OSError, CancelledError) as e:
            log.debug("engine.prepare_failed", error=str(e))
        except Exception as e:
            log.warning("engine.prepare_failed", error=repr(e), exc_info=True)

    @staticmethod
    def _settle(item: Item, result, error) -> None:
        if error is None:
            item.future.set_result(result)
        else:
            item.future.set_exception(error)

    def _schedule(self) -> None:
        while not self._stopping.wait(self.config().tick_seconds):
            self.schedule_tick()


def _started(items: list[Item]) -> list[Item]:
    """The items taken off the queue that were not cancelled meanwhile (now running)."""
    return [i for i in items if i.future.set_running_or_notify_cancel()]


def _run(item: Item, savepoint=None) -> tuple[object, BaseException | None]:
    """Run one item, logging a failure as its kind deserves; (result, error). Inside a
    batch, `savepoint` (the database's nested transaction) makes a failure roll back
    this item's changes alone."""
    try:
        if savepoint is None:
            return item.fn(), None
        with savepoint():
            return item.fn(), None
    except RpcException as e:   # the operator's bad input: answered, not a fault
        log.info("engine.command_refused", error=e.message, code=e.code)
        error = e
    except (RpcError, OSError) as e:    # lightningd refused or timed out: not ours
        log.warning("engine.item_failed", error=str(e))
        error = e
    except Exception as e:  # a fault in one item must not stop the hive
        log.error("engine.item_failed", error=repr(e), exc_info=True)
        error = e
    return None, error


def _contained(fn):
    """A read-only command on the reader thread, logged as the worker logs its items."""
    try:
        return fn()
    except RpcException as e:
        log.info("engine.command_refused", error=e.message, code=e.code)
        raise
    except Exception as e:
        log.error("engine.read_failed", error=repr(e), exc_info=True)
        raise


def _step_name(fn) -> str:
    """A tick step's name for logs: the function behind a partial or bound method."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
