"""The one door through which handlers reach lightningd: `call(method, params)`.

In lightningd it is `ThreadLocalRpc` over the real `lightning-rpc` socket; the fleet
stand-in serves that same socket, so handlers run unchanged in tests. Companion plugins
(cl-revenue-ops, CLBoss) are reached through the same door: lightningd passes their
commands through.

Every call has a timeout (`hive-rpc-timeout-seconds`; calls that wait on a peer or the
chain get LONG_CALL_FACTOR times that). A call that times out raises `RpcError` with
code RPC_TIMEOUT, which every caller already handles as lightningd refusing the call.
lightningd may still complete it later (pyln's socket just stops waiting), which the
intent executors' at-most-once rule already allows for: a failed execution is never
retried.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Callable, Protocol

from pyln.client import LightningRpc, RpcError

from handlers.frame import pipelined

RPC_TIMEOUT = -32000        # our code for "no answer in time" (not one lightningd uses)
# Calls that wait on a peer or on funding: connect (lightningd's own connect timeout is
# about a minute) and opening channels (the peer's answers, signing, broadcast).
LONG_CALLS = frozenset({"connect", "fundchannel", "multifundchannel", "fundchannel_start",
                        "fundchannel_complete", "close"})
LONG_CALL_FACTOR = 4


class Lightning(Protocol):
    def call(self, method: str, params: dict | None = None) -> dict: ...


def timeout_for(config, method: str) -> float:
    """Seconds `method` may take, from the current configuration."""
    seconds = config.rpc_timeout_seconds
    return seconds * LONG_CALL_FACTOR if method in LONG_CALLS else seconds


class _TimedRpc(LightningRpc):
    """pyln's client with a socket timeout: pyln opens one socket per call and writes the
    request first, so setting the timeout there bounds the write and every read."""
    timeout: float | None = None

    def _writeobj(self, sock, obj):
        sock.sock.settimeout(self.timeout)
        super()._writeobj(sock, obj)


class ThreadLocalRpc:
    """pyln's LightningRpc is not thread-safe (shared id counter and cmdprefix), so each
    thread gets its own client on the same socket."""

    def __init__(self, socket_path: str,
                 timeout: Callable[[str], float | None] = lambda _method: None):
        self.socket_path = socket_path
        self.timeout = timeout            # method -> seconds (None: wait for ever)
        self._local = threading.local()

    def call(self, method: str, params: dict | None = None) -> dict:
        rpc = getattr(self._local, "rpc", None)
        if rpc is None:
            rpc = self._local.rpc = _TimedRpc(self.socket_path)
        rpc.timeout = seconds = self.timeout(method)
        try:
            return rpc.call(method, params or {})
        except TimeoutError:
            raise RpcError(method, params or {}, {
                "code": RPC_TIMEOUT,
                "message": f"no answer from lightningd within {seconds:g} seconds"}) from None

    def call_many(self, method: str, params_list: list[dict]) -> list:
        """The same call for each params, on one connection (pipelined.call_many): each
        answer is a result dict or the RpcError lightningd (or the timeout) gave."""
        seconds = self.timeout(method)
        return pipelined.call_many(self.socket_path, method, params_list, seconds,
                                   lambda params: RpcError(method, params, {
                                       "code": RPC_TIMEOUT, "message": "no answer from "
                                       f"lightningd within {seconds:g} seconds"}))


class Notifier(Protocol):
    """The door for custom notifications (`ctx.notifier`): `notify(topic, payload)`."""
    def notify(self, topic: str, payload: dict) -> None: ...


class PluginNotifier:
    """Custom notifications through lightningd, which forwards them to every plugin that
    subscribed as `{"method": topic, "origin": "<our file name>", "params": params}`. The
    params are `{topic: payload}` (pyln's own shape, so pyln subscribers get the payload
    as the keyword argument named after the topic). pyln writes under its write lock, so
    any thread may call this. The topics must be declared in the manifest
    (`plugin.add_notification_topic`), or lightningd drops them."""

    def __init__(self, plugin):
        self.plugin = plugin

    def notify(self, topic: str, payload: dict) -> None:
        self.plugin.notify(topic, {topic: payload})


class Prefetching:
    """The door to lightningd with answers fetched ahead of need, for calls that only
    compute (`checkmessage`: the same question always gets the same answer). The worker
    gathers the questions of a burst of peer messages (`gather`) and asks them all at
    once, on one connection; the handler's own call then takes the answer instead of
    waiting for it. Every other call, and any question not fetched ahead, goes through
    as it is."""

    PURE = frozenset({"checkmessage"})

    def __init__(self, inner, keep: int):
        self.inner = inner
        self.keep = keep            # answers held at most (the oldest are forgotten)
        self._ready: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._local = threading.local()

    @staticmethod
    def _key(method: str, params: dict | None):
        return (method, tuple(sorted((params or {}).items())))

    def call(self, method: str, params: dict | None = None) -> dict:
        if method in self.PURE:
            with self._lock:
                answer = self._ready.pop(self._key(method, params), None)
            if answer is not None:
                return answer
        return self.inner.call(method, params)

    def prefetch(self, method: str, params: dict) -> None:
        """Ask now and keep the answer for the call that will follow; inside `gather`,
        ask when it ends. An error is not kept: that call asks again and handles it."""
        if method not in self.PURE:
            raise ValueError(f"{method} is not a call whose answer can be fetched ahead")
        gathered = getattr(self._local, "gathered", None)
        if gathered is not None:
            gathered.append((method, params))
        else:
            self._keep([(method, params)], [self.inner.call(method, params)])

    @contextmanager
    def gather(self, asker=None):
        """The questions `prefetch` is given on this thread inside the block are asked
        together when it ends: on one connection when the door offers `call_many`, on
        the `asker` executor when given (else here). Yields an `Asked`, whose `wait`
        returns once the answers are kept, or raises what asking raised (RpcError,
        OSError): no answer is then kept."""
        asked = Asked()
        self._local.gathered = gathered = []
        try:
            yield asked
        finally:
            self._local.gathered = None
        if gathered:
            asked.future = asker.submit(self._ask_all, gathered) if asker is not None \
                else _done(self._ask_all, gathered)

    def _ask_all(self, gathered) -> None:
        for method in {m for m, _ in gathered}:
            asked = [(m, p) for m, p in gathered if m == method]
            if hasattr(self.inner, "call_many"):
                answers = self.inner.call_many(method, [p for _, p in asked])
            else:
                answers = [self._ask(m, p) for m, p in asked]
            self._keep(asked, answers)

    def _ask(self, method: str, params: dict):
        try:
            return self.inner.call(method, params)
        except RpcError as e:       # answered: the call that follows gets it again
            return e

    def _keep(self, asked, answers) -> None:
        with self._lock:
            for (method, params), answer in zip(asked, answers):
                if isinstance(answer, dict):
                    self._ready[self._key(method, params)] = answer
            while len(self._ready) > self.keep:
                self._ready.popitem(last=False)


class Asked:
    """The asking of a gathered burst of questions (`Prefetching.gather`)."""
    future: Future | None = None

    def wait(self) -> None:
        if self.future is not None:
            self.future.result()


def _done(fn, *args) -> Future:
    """`fn(*args)` run here, as a finished Future (its result or its exception)."""
    fut: Future = Future()
    try:
        fut.set_result(fn(*args))
    except Exception as e:      # kept for `wait`, which raises it where it is awaited
        fut.set_exception(e)
    return fut
