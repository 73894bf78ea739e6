"""The handshake session, one table per role (HELLO → CHALLENGE → ATTEST → WELCOME).

The joiner's session exists from the moment it sends HELLO; the admin's from the moment
it answers a valid HELLO with a CHALLENGE. A message that fails validation is its own
trigger (`*_invalid`), so a failed check is a logged transition, not an exception. An
admin that refuses a joiner's ticket says why (JOIN_REFUSED): the joiner's `refused`.
Every message-driven rule requires the message to come from the session's own peer, and
is refused once the session's deadline has passed even if no tick has expired it yet.
"""
from machines.spec import Deadline, MachineSpec, Rule

JOINER = MachineSpec(
    kind="handshake_joiner",
    title="Handshake session, joiner (initiator) role",
    states=("hello_sent", "attest_sent", "joined", "refused", "failed", "expired"),
    initial="hello_sent",
    terminal=("joined", "refused", "failed", "expired"),
    rules=(
        Rule("challenge_valid", ("hello_sent",), "attest_sent", guards=("from_session_peer",),
             unless=("deadline_passed",)),
        Rule("challenge_invalid", ("hello_sent",), "failed", guards=("from_session_peer",),
             unless=("deadline_passed",)),
        Rule("welcome_valid", ("attest_sent",), "joined", guards=("from_session_peer",),
             unless=("deadline_passed",)),
        Rule("welcome_invalid", ("attest_sent",), "failed", guards=("from_session_peer",),
             unless=("deadline_passed",)),
        # The admin refused our HELLO (or, at ATTEST, the ticket or the hive's room) and
        # said why: the join ends at once with that reason.
        Rule("refused", ("hello_sent", "attest_sent"), "refused",
             guards=("from_session_peer",), unless=("deadline_passed",)),
        Rule("expire", ("hello_sent", "attest_sent"), "expired", guards=("deadline_passed",)),
    ),
    deadlines=(
        Deadline("hello_sent", "expire", "handshake_timeout_seconds"),
        Deadline("attest_sent", "expire", "handshake_timeout_seconds"),
    ),
)

ADMIN = MachineSpec(
    kind="handshake_admin",
    title="Handshake session, admin (responder) role",
    states=("challenge_sent", "welcomed", "failed", "expired"),
    initial="challenge_sent",
    terminal=("welcomed", "failed", "expired"),
    rules=(
        # A valid ATTEST admits the joiner: the ticket is used, the member added and
        # announced, WELCOME sent.
        Rule("attest_valid", ("challenge_sent",), "welcomed", guards=("from_session_peer",),
             unless=("deadline_passed", "already_admitted")),
        # The session of a joiner this very ticket already admitted (its WELCOME came too
        # late): WELCOME re-sends the stored admission; no ticket used, no member added.
        Rule("attest_valid_again", ("challenge_sent",), "welcomed",
             guards=("from_session_peer", "already_admitted"), unless=("deadline_passed",)),
        Rule("attest_invalid", ("challenge_sent",), "failed", guards=("from_session_peer",),
             unless=("deadline_passed",)),
        Rule("expire", ("challenge_sent",), "expired", guards=("deadline_passed",)),
    ),
    deadlines=(Deadline("challenge_sent", "expire", "handshake_timeout_seconds"),),
)
