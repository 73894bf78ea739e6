"""An intent lock (seed Phase 3): announce, hold, commit, execute at most once.

One table for both roles: `local` (our own announce) and `remote` (a peer's, recorded
for visibility and conflict checks). Only a local intent executes; only a remote one is
aborted by its owner's INTENT_ABORT. `executing` is persisted before the executor runs,
so a crash leaves evidence to reconcile instead of a second execution. Nothing commits
or starts executing once the intent's lock window (`expires_at`) has passed.
"""
from machines.spec import Deadline, MachineSpec, Rule

SPEC = MachineSpec(
    kind="intent_lock",
    title="Intent lock",
    states=("pending", "committed", "executing", "executed", "aborted", "expired", "failed"),
    initial="pending",
    terminal=("executed", "aborted", "expired", "failed"),
    rules=(
        # An intent still pending at its expiry (its node was down) never commits.
        Rule("hold_elapsed", ("pending",), "committed",
             guards=("deadline_passed", "within_lock_window")),
        Rule("hold_elapsed", ("pending",), "expired", guards=("deadline_passed",)),
        Rule("conflict_lost", ("pending",), "aborted"),
        Rule("abort_received", ("pending", "committed"), "aborted", guards=("is_remote",)),
        Rule("start_execution", ("committed",), "executing",
             guards=("is_local", "within_lock_window")),
        Rule("execution_succeeded", ("executing",), "executed"),
        Rule("execution_failed", ("executing",), "failed"),
        Rule("expire", ("committed",), "expired", guards=("deadline_passed",)),
    ),
    deadlines=(
        Deadline("pending", "hold_elapsed", "intent_hold_seconds"),
        Deadline("committed", "expire", "intent_expire_seconds", since="created"),
    ),
)
