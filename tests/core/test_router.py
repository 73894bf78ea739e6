"""The router: member messages are authorized before their payload is decoded, refusals are
logged under the message family, and a handshake message reaches its handler unauthorized."""
import pytest
from structlog.testing import capture_logs

from handlers import router
from handlers.frame import refusals
from handlers.wire.framing import MAGIC, MsgType
from hive_sides import Side, form_hive


@pytest.fixture
def hive(tmp_path, clock):
    a, b, stranger = (Side(n, tmp_path, clock) for n in ("a", "b", "stranger"))
    form_hive(a, b)
    yield a, b, stranger
    for s in (a, b, stranger):
        s.close()


def _raw(msg_type: MsgType, body: bytes) -> str:
    return (int(msg_type).to_bytes(2, "big") + MAGIC + body).hex()


@pytest.mark.parametrize("msg_type,family", [
    (MsgType.GOSSIP, "gossip"), (MsgType.FULL_SYNC, "gossip"), (MsgType.INTENT, "intent"),
    (MsgType.MEMBER_ADDED, "handshake")])
def test_a_strangers_member_message_is_refused_before_it_is_decoded(hive, msg_type, family):
    a, _, stranger = hive
    junk = _raw(msg_type, b"{" * 30000)        # would fail decoding (depth), if it were read
    before = a.snapshot()
    with capture_logs() as logs:
        a.receive(stranger, junk)
    events = [(e["event"], e.get("reason")) for e in logs]
    assert events == [(f"{family}.refused", "sender is not a member")]
    assert a.snapshot() == before


def test_a_members_malformed_message_is_refused_as_malformed(hive):
    a, b, _ = hive
    with capture_logs() as logs:
        a.receive(b, _raw(MsgType.INTENT, b'{"v":1,"intent":{}}'))
    [event] = [e for e in logs if e["event"] == "intent.refused"]
    assert event["reason"].startswith("malformed: intent:") and event["msg"] == "INTENT"


def test_a_members_undecodable_payload_is_a_wire_rejection(hive):
    a, b, _ = hive
    with capture_logs() as logs:
        a.receive(b, _raw(MsgType.GOSSIP, b"\xff\xfe"))
    assert [e["event"] for e in logs] == ["wire.rejected"]


def test_handshake_messages_reach_their_handler_from_strangers(hive):
    a, _, stranger = hive
    with capture_logs() as logs:
        a.receive(stranger, _raw(MsgType.HELLO, b'{"v":1,"session":"00","ticket":"x"}'))
    [event] = [e for e in logs if e["event"] == "handshake.refused"]
    assert event["msg"] == "HELLO" and event["reason"].startswith("malformed")


def test_every_message_type_has_a_route():
    assert set(router.ROUTES) == set(MsgType)


def test_a_strangers_flood_writes_a_bounded_number_of_log_lines(hive):
    a, _, stranger = hive
    junk = _raw(MsgType.GOSSIP, b"{}")
    with capture_logs() as logs:
        for _ in range(200):
            a.receive(stranger, junk)
    lines = [e for e in logs if e["event"] == "gossip.refused"]
    assert len(lines) == refusals.BURST
    assert refusals.suppressed("gossip.refused", stranger.node_id) == 200 - refusals.BURST
