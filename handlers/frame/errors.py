"""JSON-RPC error codes cl-hive answers the operator with (docs/ERRORS.md lists them).

cl-hive's own codes live in 4480-4499, a range of their own: lightningd's codes
(common/jsonrpc_errors.h) run in blocks up to 2000 (`wait`'s timeout), and its next
`wait` errors would take 2001 upwards, where cl-hive's codes used to be.
"""
from pyln.client import RpcException

INVALID_PARAMS = -32602      # lightningd's own code for a bad parameter
INTERNAL_ERROR = 4480        # a fault in cl-hive: the traceback is in the log, not the reply
NOT_IN_HIVE = 4481
ALREADY_IN_HIVE = 4482
NOT_ADMIN = 4483
PEER_UNREACHABLE = 4484
HANDSHAKE_BUSY = 4485
TOO_MANY_INTENTS = 4486
ACTION_NOT_PENDING = 4487
NOT_ALLOWED = 4488           # this node's tier lacks the right (handlers.membership.rights)
COMPANION_UNAVAILABLE = 4489  # the command needs cl-revenue-ops or CLBoss, which cannot be called now
JOIN_REFUSED = 4490          # the admin refused our HELLO, with a reason code
JOIN_FAILED = 4491           # the handshake failed (a message from the admin did not check)
TIMEOUT = 4492               # no answer in time (the handshake, or hive-join's `timeout`)
TARGET_HELD = 4493           # another intent holds the target
NOT_RUNNING = 4494           # cl-hive did not start (or is stopping)


class OperatorError(RpcException):
    """An error with `data`, the JSON-RPC error's machine-readable details."""

    def __init__(self, message: str, code: int, **data):
        super().__init__(message, code)
        self.data = data


def bad_param(name: str, problem: str) -> RpcException:
    """An operator error that names the parameter, as lightningd's own commands do."""
    return RpcException(f"{name}: {problem}", INVALID_PARAMS)


def codes() -> dict[str, int]:
    """Every code this module defines, by name (docs/ERRORS.md must list exactly these)."""
    return {name: value for name, value in globals().items()
            if name.isupper() and type(value) is int}
