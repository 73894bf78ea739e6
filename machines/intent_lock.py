"""An intent lock (seed Phase 3): announce, hold, commit, execute at most once.

One table for both roles: `local` (our own announce) and `remote` (a peer's, recorded
for visibility and conflict checks). Only a local intent executes; only a remote one is
aborted by its owner's INTENT_ABORT or committed by its owner's commit notice.
Channel opens and rebalances need more than a quiet hold: they commit only once a majority
of the active members (the initiator included) acknowledged them (`ack_received`, then
`tally`), and give up (`aborted`) if no majority came before their expiry; a member
acknowledges at most one live intent per type and target.
`executing` is persisted before the executor runs, so a crash leaves evidence to
reconcile instead of a second execution. Nothing commits or starts executing once the
intent's lock window (`expires_at`) has passed.

`conflict` is fired on both intents when ours meets a rival, each with the other as
`rival`; `rival_prevails` is the one rule (a committed rival wins, else the lower key).
A remote intent that loses is `outranked`, not finished: if our INTENT never reached its
owner, the owner commits, and its commit notice must still be able to mark it committed.
"""
from machines.spec import Deadline, MachineSpec, Rule

SPEC = MachineSpec(
    kind="intent_lock",
    title="Intent lock",
    states=("pending", "outranked", "gathering", "committed", "executing", "executed",
            "aborted", "expired", "failed"),
    initial="pending",
    terminal=("executed", "aborted", "expired", "failed"),
    # An intent in these states holds its type and target (an executed one too, until its
    # lock window ends: storage checks that against `expires_at`).
    groups={"holds_lock": ("pending", "outranked", "gathering", "committed", "executing"),
            # not committed yet: what a member may still acknowledge
            "uncommitted": ("pending", "outranked", "gathering")},
    rules=(
        # An intent recorded without the majority flag (before migration 11) commits when
        # its hold ends: the seed's rule.
        Rule("hold_elapsed", ("pending",), "committed",
             guards=("deadline_passed", "within_lock_window", "needs_no_majority")),
        # A money-moving intent commits at the end of its hold only if a majority of the
        # members it counted at its announce acknowledged it by then...
        Rule("hold_elapsed", ("pending",), "committed",
             guards=("deadline_passed", "within_lock_window", "is_local",
                     "acknowledged_by_majority")),
        # ... else it gathers acknowledgements until its expiry (a peer's copy waits for
        # its commit notice there).
        Rule("hold_elapsed", ("pending",), "gathering",
             guards=("deadline_passed", "within_lock_window")),
        # An intent still pending at its expiry (its node was down) never commits.
        Rule("hold_elapsed", ("pending",), "expired", guards=("deadline_passed",)),
        Rule("ack_received", ("pending", "gathering"), None, guards=("is_local",)),
        Rule("tally", ("gathering",), "committed",
             guards=("is_local", "within_lock_window", "acknowledged_by_majority")),
        Rule("conflict", ("pending", "gathering"), "aborted",
             guards=("is_local", "rival_prevails")),
        Rule("conflict", ("pending", "gathering"), "outranked",
             guards=("is_remote", "rival_prevails")),
        Rule("commit_received", ("pending", "outranked", "gathering"), "committed",
             guards=("is_remote", "within_lock_window")),
        Rule("abort_received", ("pending", "outranked", "gathering", "committed"), "aborted",
             guards=("is_remote",)),
        # Its initiator was banned: the hive no longer coordinates with it, so its intent
        # stops holding the target here (one it committed already runs out at its expiry).
        Rule("initiator_banned", ("pending", "outranked", "gathering"), "aborted",
             guards=("is_remote",)),
        Rule("start_execution", ("committed",), "executing",
             guards=("is_local", "within_lock_window")),
        Rule("execution_succeeded", ("executing",), "executed"),
        Rule("execution_failed", ("executing",), "failed"),
        # No majority before the expiry: our intent gives up.
        Rule("expire", ("gathering",), "aborted", guards=("deadline_passed", "is_local")),
        Rule("expire", ("outranked", "gathering", "committed"), "expired",
             guards=("deadline_passed",)),
    ),
    deadlines=(
        # The intent's own timing (signed in its record), so every node holds and expires
        # it alike whatever its own options say.
        Deadline("pending", "hold_elapsed", "intent_hold_seconds", data_key="hold_seconds"),
        Deadline("outranked", "expire", "intent_expire_seconds", since="created",
                 data_key="expire_seconds"),
        Deadline("gathering", "expire", "intent_expire_seconds", since="created",
                 data_key="expire_seconds"),
        Deadline("committed", "expire", "intent_expire_seconds", since="created",
                 data_key="expire_seconds"),
    ),
)
