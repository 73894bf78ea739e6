"""`hive-join` as the operator meets it: the command answers when the joiner's session
ends (joined, or an error naming why not, docs/ERRORS.md), or with a timeout error after
its `timeout`. The admin is connected first when needed, on the bridge's pool (a connect
may take a minute, and the worker carries on meanwhile). The handshake itself is
handlers/membership/join.py."""
from __future__ import annotations

from concurrent.futures import Future
from typing import Callable

import structlog
from pyln.client import RpcException

from handlers.bridge.companions import JOIN_LANE
from handlers.bridge.pool import TIMED_OUT
from handlers.frame import errors
from handlers.membership import handshake

log = structlog.get_logger("hive")


class JoinCommand:
    def __init__(self, ctx, command: Callable[[Callable], Future]):
        self.ctx = ctx
        self.command = command          # runs a function on the worker (Hive.command)
        self.waiters: dict[str, tuple[Future, float, int]] = {}
        self.connecting = False         # a hive-join's connect is on the bridge's pool

    def start(self, ticket, address, timeout) -> Future:
        config = self.ctx.config()
        if timeout is None:
            timeout = 2 * config.handshake_timeout_seconds + 2 * config.tick_seconds
        if type(timeout) is not int or not 1 <= timeout <= 3600:
            return failed(errors.bad_param("timeout", "expected an integer from 1 to 3600"))
        answer: Future = Future()

        def opened(session: str) -> None:
            self.waiters[session] = (answer, self.ctx.clock.now() + timeout, timeout)

        def begin():
            plan = handshake.check_join(self.ctx, ticket, address)
            if self.connecting:
                raise RpcException("a hive-join is already in progress; wait for it to end",
                                   errors.HANDSHAKE_BUSY)
            target = handshake.connect_target(self.ctx, plan)
            if target is None:
                return opened(handshake.open_join(self.ctx, plan))
            self.connecting = True
            self.ctx.bridge.lightningd(self.ctx, "connect", {"id": target},
                                       lambda outcome: connected(plan, outcome), lane=JOIN_LANE)

        def connected(plan, outcome) -> None:
            """On the worker, once: connect answered, failed or timed out."""
            self.connecting = False
            if not outcome.ok:
                why = outcome.error
                if outcome.status == TIMED_OUT:
                    why = (f"no answer within {self.ctx.config().bridge_timeout_seconds} s "
                           "(hive-bridge-timeout-seconds)")
                log.info("join.unreachable", admin=plan["admin"], status=outcome.status,
                         error=why)
                return answer.set_exception(handshake.unreachable(plan, why))
            try:
                opened(handshake.open_join(self.ctx, plan))
            except RpcException as e:   # e.g. joined meanwhile: the operator's answer
                log.info("join.refused", error=e.message, code=e.code)
                answer.set_exception(e)
            except Exception as e:      # a fault: answered, and logged where it ran
                answer.set_exception(e)
                raise

        def started(f: Future):
            if f.exception() is not None:
                answer.set_exception(f.exception())
        self.command(begin).add_done_callback(started)
        return answer

    def on_outcome(self, outcome) -> None:
        """A dispatcher observer: a joiner session we wait on has ended."""
        if outcome.kind != handshake.JOINER or outcome.instance_id not in self.waiters:
            return
        if handshake.join_result(self.ctx, outcome.instance_id)["done"]:
            answer, _, _ = self.waiters.pop(outcome.instance_id)
            _settle(answer, lambda: handshake.join_answer(self.ctx, outcome.instance_id))

    def expire(self) -> None:
        """A tick step: a `hive-join` whose `timeout` passed answers with the state now."""
        now = self.ctx.clock.now()
        for session, (answer, deadline, timeout) in list(self.waiters.items()):
            if now >= deadline:
                del self.waiters[session]
                _settle(answer, lambda: handshake.join_answer(self.ctx, session, timeout))


def _settle(answer: Future, fn) -> None:
    """hive-join's answer: `fn`'s result, or the operator error it raised."""
    try:
        answer.set_result(fn())
    except RpcException as e:
        answer.set_exception(e)


def failed(error: Exception) -> Future:
    """A command's answer that is this error already."""
    fut: Future = Future()
    fut.set_exception(error)
    return fut
