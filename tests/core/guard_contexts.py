"""For tests: the instance data and trigger context that make a guard pass or fail."""

PASS = {
    "deadline_passed": ({}, {}),            # handled by setting the deadline, see below
    "quorum_reached": ({}, {"votes": 2, "eligible": 3}),
    "from_session_peer": ({"peer_id": "02" + "11" * 32}, {"peer_id": "02" + "11" * 32}),
    "already_admitted": ({"admitted": True}, {}),
    "is_local": ({"role": "local"}, {}),
    "is_remote": ({"role": "remote"}, {}),
    "within_lock_window": ({"expires_at": 2**40}, {}),
    "needs_no_majority": ({"majority": False}, {}),
    "acknowledged_by_majority": ({"voters": ["a", "b", "c"], "acks": {"a": "s", "c": "s"}}, {}),
    "rival_prevails": ({"intent": {"initiator": "03" + "ff" * 32}},
                       {"rival": "02" + "00" * 32, "rival_committed": False}),
    "mode_advisor": ({}, {"mode": "advisor"}),
    "mode_autonomous": ({}, {"mode": "autonomous"}),
    "mode_oracle": ({}, {"mode": "oracle"}),
    # Exactly at every limit is within them.
    "within_autonomous_limits": ({}, {"amount_sat": 100, "spent_sat": 900, "count": 9,
                                      "budget_sat": 1000, "max_action_sat": 100,
                                      "max_actions": 10}),
    "failure_threshold_reached": ({}, {"failures": 3, "threshold": 3}),
    "ratio_below_throttle_mark": ({}, {"ratio": 0.49, "throttle_ratio": 0.5}),
    "ratio_at_release_mark": ({}, {"ratio": 0.6, "release_ratio": 0.6}),
}

FAIL = {
    "deadline_passed": ({}, {}),
    "quorum_reached": ({}, {"votes": 1, "eligible": 3}),
    "from_session_peer": ({"peer_id": "02" + "11" * 32}, {"peer_id": "03" + "22" * 32}),
    "already_admitted": ({"admitted": False}, {}),
    "is_local": ({"role": "remote"}, {}),
    "is_remote": ({"role": "local"}, {}),
    "within_lock_window": ({"expires_at": 0}, {}),
    "needs_no_majority": ({"majority": True}, {}),
    "acknowledged_by_majority": ({"voters": ["a", "b", "c"], "acks": {"a": "s", "d": "s"}}, {}),
    "rival_prevails": ({"intent": {"initiator": "02" + "00" * 32}},
                       {"rival": "03" + "ff" * 32, "rival_committed": False}),
    # A mode no guard accepts, so failing one mode guard never passes another.
    "mode_advisor": ({}, {"mode": "none"}),
    "mode_autonomous": ({}, {"mode": "none"}),
    "mode_oracle": ({}, {"mode": "none"}),
    "within_autonomous_limits": ({}, {"amount_sat": 101, "spent_sat": 900, "count": 9,
                                      "budget_sat": 1000, "max_action_sat": 100,
                                      "max_actions": 10}),
    "failure_threshold_reached": ({}, {"failures": 1, "threshold": 3}),
    "ratio_below_throttle_mark": ({}, {"ratio": 0.5, "throttle_ratio": 0.5}),
    "ratio_at_release_mark": ({}, {"ratio": 0.59, "release_ratio": 0.6}),
}


def context_for(guards, table, now):
    """(data, kwargs, deadline) that put every named guard in the given table's outcome."""
    data, kwargs = {}, {}
    deadline = None
    for g in guards:
        d, k = table[g]
        data.update(d)
        kwargs.update(k)
        if g == "deadline_passed":
            deadline = now - 1 if table is PASS else now + 1
    return data, kwargs, deadline
