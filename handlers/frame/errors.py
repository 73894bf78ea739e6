"""JSON-RPC error codes cl-hive answers the operator with."""
from pyln.client import RpcException

INVALID_PARAMS = -32602      # lightningd's own code for a bad parameter
NOT_IN_HIVE = 2001
ALREADY_IN_HIVE = 2002
NOT_ADMIN = 2003
PEER_UNREACHABLE = 2004
HANDSHAKE_BUSY = 2005
TOO_MANY_INTENTS = 2006
ACTION_NOT_PENDING = 2007
NOT_ALLOWED = 2008           # this node's tier lacks the right (handlers.membership.rights)


def bad_param(name: str, problem: str) -> RpcException:
    """An operator error that names the parameter, as lightningd's own commands do."""
    return RpcException(f"{name}: {problem}", INVALID_PARAMS)
