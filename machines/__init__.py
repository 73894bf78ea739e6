"""Every state machine of cl-hive, declared as data (see `machines.spec`).

`SPECS` is the one registry: the runtime, storage, `hive-status`, `hive-diagram` and the
diagram generator all iterate it.
"""
from machines import (circuit_breaker, contribution_throttle, handshake, intent_lock, member_tier,
                      pending_action)

SPECS = {
    spec.kind: spec
    for spec in (handshake.JOINER, handshake.ADMIN, member_tier.SPEC, intent_lock.SPEC,
                 pending_action.SPEC, circuit_breaker.SPEC, contribution_throttle.SPEC)
}
