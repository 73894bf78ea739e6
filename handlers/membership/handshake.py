"""The handshake, HELLO → CHALLENGE → ATTEST → WELCOME, for both roles, and the admin's
MEMBER_ADDED announcement to the rest of the hive: one name for what `join` (the joiner's
side), `admit` (the admin's side) and `session` (what both share) hold.

Each incoming message is checked cheapest first: session and sender (through the
machine's own rules, `Dispatcher.allows`) before any signature work, so unsolicited or
replayed messages cost nothing and never make us sign. A check that fails on a message
of a live session from that session's peer is the machine's `*_invalid` trigger; any
other refusal is logged and dropped. Nothing is sent back about a refusal, but for the
admin's JOIN_REFUSED to a holder of a ticket it issued (ticket used, expired, bound to
another node, hive full, banned), so that its hive-join ends at once with the reason.
"""
from handlers.membership.admit import on_attest, on_hello, on_member_added  # noqa: F401
from handlers.membership.join import (EXPIRED_AFTER_ATTEST, REFUSED_BECAUSE,  # noqa: F401
                                      check_join, connect_target, join_answer, join_result,
                                      on_challenge, on_join_refused, on_welcome, open_join,
                                      start_join, unreachable)
from handlers.membership.session import (ADMIN, FEATURES, JOINER, LIVE_ADMIN,  # noqa: F401
                                         LIVE_JOINER, Invariant)
