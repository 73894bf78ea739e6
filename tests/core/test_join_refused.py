"""JOIN_REFUSED: the joiner's hive-join answers at once with the admin's reason, for each
reason; only the admin it sent HELLO to, for its live session, can end it so; the admin's
answers are rate-limited. (Which HELLO or ATTEST makes the admin answer which reason:
test_handshake.py and test_council.py.)"""
import pytest
from structlog.testing import capture_logs

from handlers.frame import errors
from handlers.hive import JOIN_REFUSAL_BURST
from handlers.membership import handshake
from handlers.membership import members as membership
from handlers.wire.framing import MsgType, encode
from handlers.wire.messages import JOIN_REFUSAL_REASONS
from hive_sides import Side, pump
from storage import outbox


@pytest.fixture
def hive(tmp_path, clock):
    admin, joiner = Side("admin", tmp_path, clock), Side("joiner", tmp_path, clock)
    membership.genesis(admin.ctx, "fleet")
    yield admin, joiner
    admin.close()
    joiner.close()


def refused(session, reason):
    return encode(MsgType.JOIN_REFUSED, {"session": session, "reason": reason})


@pytest.mark.parametrize("reason", JOIN_REFUSAL_REASONS)
def test_each_reason_ends_the_join_at_once_as_an_error_naming_it(hive, reason):
    admin, joiner = hive
    session = handshake.start_join(joiner.ctx, membership.invite(admin.ctx, None, None, None)
                                   ["ticket"], None)
    joiner.receive(admin, refused(session, reason))
    with pytest.raises(errors.OperatorError) as e:
        handshake.join_answer(joiner.ctx, session)
    assert e.value.code == errors.JOIN_REFUSED
    assert e.value.message == f"{reason}: {handshake.REFUSED_BECAUSE[reason]}"
    assert e.value.data == {"reason": reason, "session": session, "state": "refused",
                            "admin": admin.node_id}


@pytest.mark.usefixtures("every_refusal_logged")
def test_only_the_admin_for_the_live_session_can_refuse_it(hive, tmp_path, clock):
    admin, joiner = hive
    stranger = Side("stranger", tmp_path, clock)
    session = handshake.start_join(joiner.ctx, membership.invite(admin.ctx, None, None, None)
                                   ["ticket"], None)
    with capture_logs() as logs:
        joiner.receive(stranger, refused(session, "banned"))          # not the admin
        joiner.receive(admin, refused("cd" * 16, "banned"))           # not our session
        joiner.receive(admin, encode(MsgType.JOIN_REFUSED, {"session": session,
                                                            "reason": "you smell"}))
    assert [e["msg"] for e in logs if e["event"] == "handshake.refused"] == ["JOIN_REFUSED"] * 3
    assert handshake.join_result(joiner.ctx, session)["state"] == "hello_sent"
    stranger.close()
    # Once the session ended, a late refusal changes nothing.
    joiner.receive(admin, refused(session, "hive_full"))
    joiner.receive(admin, refused(session, "banned"))
    assert joiner.dispatcher.load("handshake_joiner", session).data["refused"] == "hive_full"


def test_the_admins_answers_are_rate_limited_across_peers(hive):
    admin, joiner = hive
    ticket = membership.invite(admin.ctx, None, None, None)["ticket"]
    handshake.start_join(joiner.ctx, ticket, None)
    pump(admin, joiner)                                     # the ticket is used now
    before = outbox.total_count(admin.db.conn())
    peers = ["02" + f"{i:064x}" for i in range(JOIN_REFUSAL_BURST + 5)]
    with capture_logs() as logs:
        for i, peer in enumerate(peers):
            admin.receive(peer, encode(MsgType.HELLO, {"session": f"{i:032x}",
                                                       "ticket": ticket}))
    answered = [e for e in logs if e["event"] == "handshake.refused" and "answered" in e]
    assert len(answered) == JOIN_REFUSAL_BURST
    assert outbox.total_count(admin.db.conn()) - before == JOIN_REFUSAL_BURST
