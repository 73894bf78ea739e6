"""A member's tier (seed Phases 1 and 5).

Created at admission in the tier the admission grants (neophyte by default; the genesis
node as admin). Promotion, ban and unban need a quorum of signed votes, checked by the
`quorum_reached` guard from counts the handler verified. An unbanned node is `left`: it
needs a new admission (ticket and handshake) to come back. A member that left may still be
banned (the ban then bars its return); the admin is never banned and never leaves (it
holds the hive's genesis key: members who distrust it leave and form a new hive).
"""
from machines.spec import MachineSpec, Rule

SPEC = MachineSpec(
    kind="member_tier",
    title="Member tier",
    states=("neophyte", "member", "admin", "banned", "left"),
    initial="neophyte",
    entry_states=("member", "admin"),
    rules=(
        Rule("promote", ("neophyte",), "member", guards=("quorum_reached",)),
        Rule("ban", ("neophyte", "member", "left"), "banned", guards=("quorum_reached",)),
        Rule("unban", ("banned",), "left", guards=("quorum_reached",)),
        Rule("leave", ("neophyte", "member"), "left"),
        Rule("readmit", ("left",), "neophyte"),
    ),
)
