"""The bridge's circuit breaker around calls to cl-revenue-ops and CLBoss (seed Phase 4).

Failures below the threshold are counted by an internal transition; at the threshold the
breaker opens. After the cool-down one probe call is allowed (half_open): success closes
it, failure opens it again.
"""
from machines.spec import Deadline, MachineSpec, Rule

SPEC = MachineSpec(
    kind="circuit_breaker",
    title="Bridge circuit breaker",
    states=("closed", "open", "half_open"),
    initial="closed",
    rules=(
        Rule("failure", ("closed",), "open", guards=("failure_threshold_reached",)),
        Rule("failure", ("closed",), None),
        Rule("success", ("closed",), None),
        Rule("cooldown_elapsed", ("open",), "half_open", guards=("deadline_passed",)),
        Rule("success", ("half_open",), "closed"),
        Rule("failure", ("half_open",), "open"),
    ),
    deadlines=(Deadline("open", "cooldown_elapsed", "breaker_reset_seconds"),),
)
