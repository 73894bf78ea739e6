"""A governance pending action (seed Phase 7).

The governance mode decides the path at `submit`: autonomous goes straight to approved;
advisor waits for the operator and oracle for the external decider, both in
awaiting_approval until approved, rejected or expired.
"""
from machines.spec import Deadline, MachineSpec, Rule

SPEC = MachineSpec(
    kind="pending_action",
    title="Governance pending action",
    states=("proposed", "awaiting_approval", "approved", "executing", "executed",
            "rejected", "expired", "failed"),
    initial="proposed",
    terminal=("executed", "rejected", "expired", "failed"),
    rules=(
        Rule("submit", ("proposed",), "approved", guards=("mode_autonomous",)),
        Rule("submit", ("proposed",), "awaiting_approval", guards=("mode_advisor",)),
        Rule("submit", ("proposed",), "awaiting_approval", guards=("mode_oracle",)),
        Rule("approve", ("awaiting_approval",), "approved"),
        Rule("reject", ("awaiting_approval",), "rejected"),
        Rule("expire", ("awaiting_approval",), "expired", guards=("deadline_passed",)),
        Rule("start_execution", ("approved",), "executing"),
        Rule("execution_succeeded", ("executing",), "executed"),
        Rule("execution_failed", ("executing",), "failed"),
    ),
    deadlines=(Deadline("awaiting_approval", "expire", "pending_action_expire_seconds"),),
)
