"""How a command's outcome reaches the operator: a result, a cl-hive error code with a
short message, or -32602 naming the parameter; never pyln's -32600 "Invalid Request"
with a traceback (docs/ERRORS.md)."""
from __future__ import annotations

import inspect
from concurrent.futures import Future

import structlog
from pyln.client import RpcError, RpcException
from pyln.client.plugin import RequestState

from handlers.frame import errors
from handlers.frame.effects import RPC_TIMEOUT

log = structlog.get_logger("hive.command")

INJECTED = ("plugin", "request")      # what pyln passes in itself


def bind_problem(func, params) -> RpcException | None:
    """Why pyln could not call `func` with `params` (a missing, unknown or extra
    parameter), as the operator's -32602 error naming it; None when it can."""
    wanted = [p for p in inspect.signature(func).parameters.values()
              if p.name not in INJECTED and p.kind is not p.VAR_KEYWORD]
    required = [p.name for p in wanted if p.default is p.empty]
    if isinstance(params, list):
        if len(params) > len(wanted):
            return errors.bad_param(
                "params", f"{len(params)} given, at most {len(wanted)} "
                f"({' '.join(p.name for p in wanted) or 'none'})")
        missing = required[len(params):]
    elif isinstance(params, dict):
        unknown = sorted(set(params) - {p.name for p in wanted})
        if unknown:
            return errors.bad_param(unknown[0], "unknown parameter")
        missing = [name for name in required if name not in params]
    else:
        return errors.bad_param("params", "expected an array or an object")
    if missing:
        return errors.bad_param(missing[0], "missing required parameter")
    return None


def as_operator_error(command: str, error: BaseException) -> RpcException:
    """The error the operator sees. An RpcException is already one; anything else is
    logged once where it happened (the engine's worker or reader, or `internal_fault`)."""
    if isinstance(error, RpcException):
        return error
    if isinstance(error, RpcError) and isinstance(error.error, dict):
        message = error.error.get("message", "")
        if error.error.get("code") == RPC_TIMEOUT:
            return RpcException(f"{command}: lightningd's {error.method}: {message}",
                                errors.TIMEOUT)
        return RpcException(f"{command}: lightningd's {error.method} failed: {message}",
                            errors.INTERNAL_ERROR)
    return RpcException(f"{command}: internal error ({type(error).__name__}); "
                        "the traceback is in the log", errors.INTERNAL_ERROR)


def internal_fault(command: str, error: BaseException) -> RpcException:
    """A fault raised before the command reached the engine: logged here, once."""
    log.error("command.fault", command=command, error=repr(error), exc_info=error)
    return as_operator_error(command, error)


def fail(request, error: RpcException) -> None:
    """Answer with {code, message} only: pyln's `set_exception` adds a `traceback` field
    (the current exception's, or "NoneType: None" outside one) that lightningd passes
    to the operator verbatim. pyln is pinned (requirements.txt), so its Request's
    fields are stable."""
    if request.state != RequestState.PENDING:
        return
    body = {"code": error.code, "message": error.message}
    if getattr(error, "data", None):
        body["data"] = error.data
    request._write_result({"jsonrpc": "2.0", "id": request.id, "error": body})
    request.state = RequestState.FAILED
    request.termination_tb = "answered by handlers.frame.replies.fail"


def answer(request, future: Future) -> None:
    """Hand a command's future back to lightningd from whichever thread finishes it."""
    def done(f: Future) -> None:
        error = f.exception()
        if error is None:
            request.set_result(f.result())
        else:
            fail(request, as_operator_error(request.method, error))
    future.add_done_callback(done)
