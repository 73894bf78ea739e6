"""Every guard a machine table may name, as pure functions of the event.

Guards see the trigger's keyword context (`ev.kwargs`, always holding `now`) and the
instance (`ev.model`); they never do I/O. Shared rules such as the quorum formula live
here once, so no handler carries its own copy.
"""
from __future__ import annotations


def majority_quorum(eligible: int) -> int:
    """Votes needed for a strict majority (the seed's 51%) of `eligible` voters."""
    if eligible < 0:
        raise ValueError("eligible voters cannot be negative")
    return eligible // 2 + 1


def key_winner(a: str, b: str) -> str:
    """The seed's tie-breaker between two pending intents: the lowest pubkey wins."""
    return min(a, b)


def deadline_passed(ev) -> bool:
    deadline = ev.model.deadline
    return deadline is not None and ev.kwargs["now"] >= deadline


def quorum_reached(ev) -> bool:
    return ev.kwargs.get("votes", 0) >= majority_quorum(ev.kwargs.get("eligible", 0))


def from_session_peer(ev) -> bool:
    # A handshake message moves a session only when it comes from that session's peer.
    return ev.kwargs.get("peer_id") == ev.model.data.get("peer_id")


def already_admitted(ev) -> bool:
    # The admin opened this session for a member admitted by the same ticket (re-HELLO).
    return ev.model.data.get("admitted") is True


def is_local(ev) -> bool:
    return ev.model.data.get("role") == "local"


def is_remote(ev) -> bool:
    return ev.model.data.get("role") == "remote"


def within_lock_window(ev) -> bool:
    # An intent's lock lasts until `expires_at` (its announce plus its expiry), the moment
    # peers' copies of it expire: past it, committing or executing could meet a rival
    # that took the target meanwhile. No window recorded means no window (fail closed).
    expires_at = ev.model.data.get("expires_at")
    return expires_at is not None and ev.kwargs["now"] < expires_at


def needs_no_majority(ev) -> bool:
    # Intents announced without the majority flag (before migration 11) commit on a quiet
    # hold, the seed's rule; every intent type announced now needs a majority.
    return ev.model.data.get("majority") is not True


def acknowledged_by_majority(ev) -> bool:
    # Acknowledgements count only from the members the initiator counted at its announce
    # (`voters`, itself included): the majority of that fixed set is what two rival
    # intents' acknowledgers must share (docs/PROTOCOL.md §6).
    voters = ev.model.data.get("voters") or []
    acks = ev.model.data.get("acks") or {}
    votes = sum(1 for v in set(voters) if v in acks)
    return bool(voters) and votes >= majority_quorum(len(set(voters)))


def rival_prevails(ev) -> bool:
    # The intent-lock conflict rule, applied to this intent meeting `rival` (its
    # initiator's key) that is `rival_committed` or not: a committed rival wins whatever
    # the keys; between two pending intents the lower initiator key wins.
    if ev.kwargs.get("rival_committed") is True:
        return True
    rival = ev.kwargs.get("rival")
    own = (ev.model.data.get("intent") or {}).get("initiator")
    return rival is not None and own is not None and key_winner(rival, own) == rival


def mode_advisor(ev) -> bool:
    return ev.kwargs.get("mode") == "advisor"


def mode_autonomous(ev) -> bool:
    return ev.kwargs.get("mode") == "autonomous"


def mode_oracle(ev) -> bool:
    return ev.kwargs.get("mode") == "oracle"


AUTONOMOUS_WINDOW = 86400      # the autonomous limits' rolling window: 24 hours


def autonomous_limit_exceeded(amount_sat: int, spent_sat: int, count: int, budget_sat: int,
                              max_action_sat: int, max_actions: int) -> str | None:
    """Why autonomous mode may not approve an action of `amount_sat` when `spent_sat` and
    `count` actions were approved autonomously within the window; None when it may.
    Exactly at a limit is within it."""
    if count + 1 > max_actions:
        return f"{count} actions approved autonomously in 24 h; the limit is {max_actions}"
    if amount_sat > max_action_sat:
        return f"{amount_sat} sat exceeds the per-action maximum of {max_action_sat} sat"
    if spent_sat + amount_sat > budget_sat:
        return (f"{spent_sat} sat approved autonomously in 24 h plus {amount_sat} sat "
                f"exceeds the budget of {budget_sat} sat")
    return None


def within_autonomous_limits(ev) -> bool:
    k = ev.kwargs
    if "spent_sat" not in k:
        return False        # limits not computed: never approve blind
    return autonomous_limit_exceeded(k.get("amount_sat") or 0, k["spent_sat"], k["count"],
                                     k["budget_sat"], k["max_action_sat"],
                                     k["max_actions"]) is None


def failure_threshold_reached(ev) -> bool:
    return ev.kwargs.get("failures", 0) >= ev.kwargs.get("threshold", 1)


def ratio_below_throttle_mark(ev) -> bool:
    # An undefined ratio (too little volume) never throttles.
    ratio = ev.kwargs.get("ratio")
    return ratio is not None and ratio < ev.kwargs.get("throttle_ratio", 0.0)


def ratio_at_release_mark(ev) -> bool:
    # An undefined ratio releases: a member that took too little to judge costs nothing.
    ratio = ev.kwargs.get("ratio")
    return ratio is None or ratio >= ev.kwargs.get("release_ratio", float("inf"))


GUARDS = {
    f.__name__: f
    for f in (deadline_passed, quorum_reached, from_session_peer, already_admitted, is_local,
              is_remote, within_lock_window, needs_no_majority, acknowledged_by_majority,
              rival_prevails, mode_advisor, mode_autonomous, mode_oracle,
              within_autonomous_limits, failure_threshold_reached, ratio_below_throttle_mark,
              ratio_at_release_mark)
}
