"""A governance pending action (seed Phase 7): everything cl-hive would do on its own
initiative is proposed as one of these first, and the governance mode decides it at
`submit` (the mode is recorded on the action then; a later mode change never rewrites it).

- advisor: waits in awaiting_approval for the operator (approve, reject) or its expiry.
- autonomous: approved at once within the operator's limits (`within_autonomous_limits`:
  rolling 24-hour budget, per-action maximum, actions per day); beyond a limit it waits
  for the operator as in advisor mode, with the reason recorded.
- oracle: consulting_oracle while the external decider is asked (off the worker). Its
  approve or reject decides; any failure (timeout, refused connection, non-2xx, malformed
  or unknown answer, a restart mid-call, the persisted deadline) never approves: the
  action waits for the operator, with the reason. The operator may decide meanwhile; a
  late oracle answer is then refused by this table.

Approved actions execute once: `start_execution` is committed before anything runs
(coordinated kinds announce their intent lock in the same transaction), so a restart
finds evidence, never a second run. An approved action that cannot start fails.
"""
from machines.spec import Deadline, MachineSpec, Rule

SPEC = MachineSpec(
    kind="pending_action",
    title="Governance pending action",
    states=("proposed", "awaiting_approval", "consulting_oracle", "approved", "executing",
            "executed", "rejected", "expired", "failed"),
    initial="proposed",
    terminal=("executed", "rejected", "expired", "failed"),
    groups={"undecided": ("proposed", "awaiting_approval", "consulting_oracle"),
            "decidable": ("awaiting_approval", "consulting_oracle")},
    rules=(
        Rule("submit", ("proposed",), "approved",
             guards=("mode_autonomous", "within_autonomous_limits")),
        # Over a limit: waits for the operator, the limit it broke in `waiting_reason`.
        Rule("submit", ("proposed",), "awaiting_approval", guards=("mode_autonomous",),
             unless=("within_autonomous_limits",)),
        Rule("submit", ("proposed",), "awaiting_approval", guards=("mode_advisor",)),
        Rule("submit", ("proposed",), "consulting_oracle", guards=("mode_oracle",)),
        Rule("oracle_approved", ("consulting_oracle",), "approved"),
        Rule("oracle_rejected", ("consulting_oracle",), "rejected"),
        Rule("oracle_failed", ("consulting_oracle",), "awaiting_approval"),
        Rule("oracle_deadline", ("consulting_oracle",), "awaiting_approval",
             guards=("deadline_passed",)),
        # The operator has the last word, also while the oracle is being asked.
        Rule("approve", ("awaiting_approval", "consulting_oracle"), "approved"),
        Rule("reject", ("awaiting_approval", "consulting_oracle"), "rejected"),
        Rule("expire", ("awaiting_approval",), "expired", guards=("deadline_passed",)),
        Rule("start_execution", ("approved",), "executing"),
        Rule("execution_succeeded", ("executing",), "executed"),
        Rule("execution_failed", ("approved", "executing"), "failed"),
    ),
    deadlines=(
        # From the proposal, however long the oracle took first.
        Deadline("awaiting_approval", "expire", "pending_action_expire_seconds",
                 since="created"),
        # The oracle call's timeout is the bridge pool's, in memory; this one is persisted
        # (a restart mid-call, a pool that never answered).
        Deadline("consulting_oracle", "oracle_deadline", "oracle_deadline_seconds"),
    ),
)
