"""A member's contribution throttle (seed Phase 5.2), one instance per member, keyed by
its peer id, fired by the contribution ledger's tick with the member's ratio over the
window. Hysteresis is in the table: below the throttle mark a counted member is
throttled; a throttled member is released only at the (higher) release mark, or when its
ratio becomes undefined (too little volume to judge). While throttled, the bridge keeps
the member's channels out of the zero-fee fleet policy.
"""
from machines.spec import MachineSpec, Rule

SPEC = MachineSpec(
    kind="contribution_throttle",
    title="Contribution throttle",
    states=("counted", "throttled"),
    initial="counted",
    rules=(
        Rule("ratio_evaluated", ("counted",), "throttled", guards=("ratio_below_throttle_mark",)),
        Rule("ratio_evaluated", ("throttled",), "counted", guards=("ratio_at_release_mark",)),
    ),
)
