"""The handshake and membership handlers, both roles, on real SQLite and real signatures.
Each bad input is refused, leaves every side's state unchanged, and makes no one sign."""
import base64
import json

import pytest
from pyln.client import RpcException
from structlog.testing import capture_logs

from handlers.frame import config as cfg
from handlers.membership import handshake
from handlers.membership import members as membership
from handlers.wire import signing
from handlers.hive import HELLO_BURST, MESSAGE_BURST, Hive
from handlers.frame import refusals as refusal_logs
from handlers.frame.refusals import BURST as REFUSAL_LOG_BURST
from handlers.wire.framing import MsgType, decode, encode
from hive_sides import Side, pump
from machines import handshake as tables
from storage import hive as hive_store


@pytest.fixture
def sides(tmp_path, clock):
    made = {}

    def make(name, **options):
        made[name] = Side(name, tmp_path, clock, **options)
        return made[name]
    yield make
    for s in made.values():
        s.close()


@pytest.fixture
def hive(sides):
    """An admin with a hive, and a would-be joiner."""
    admin, joiner = sides("admin"), sides("joiner")
    membership.genesis(admin.ctx, "fleet")
    return admin, joiner


def invite(admin, **kw):
    return membership.invite(admin.ctx, kw.get("valid_hours"), kw.get("tier"),
                             kw.get("peer_id"))["ticket"]


def join(admin, joiner, ticket):
    session = handshake.start_join(joiner.ctx, ticket, None)
    pump(admin, joiner)
    return handshake.join_result(joiner.ctx, session)


def refusals(logs):
    return [e["reason"] for e in logs if e["event"] == "handshake.refused"]


def told(admin, joiner):
    """The JOIN_REFUSED answers the admin queued for `joiner`: (session, reason) each."""
    out = []
    for msg in admin.outgoing(joiner):
        msg_type, body = decode(msg)
        assert msg_type == MsgType.JOIN_REFUSED, msg_type
        out.append((body["session"], body["reason"]))
    return out


def hello(session="ab" * 16, ticket="x"):
    return encode(MsgType.HELLO, {"session": session, "ticket": ticket})


# -- the path ------------------------------------------------------------------------
def test_genesis_invite_join_and_announce(hive, sides):
    admin, joiner = hive
    result = join(admin, joiner, invite(admin))
    assert result["state"] == "joined" and result["tier"] == "neophyte"
    assert admin.members() == joiner.members() == {admin.node_id: "admin",
                                                   joiner.node_id: "neophyte"}
    third = sides("third")
    assert join(admin, third, invite(admin, tier="member"))["state"] == "joined"
    pump(admin, joiner, third)           # MEMBER_ADDED reaches the first joiner
    expected = {admin.node_id: "admin", joiner.node_id: "neophyte", third.node_id: "member"}
    assert admin.members() == joiner.members() == third.members() == expected
    meta = hive_store.get_meta(joiner.db.conn())
    assert meta["hive_id"] == hive_store.get_meta(admin.db.conn())["hive_id"]
    assert meta["admin_id"] == admin.node_id


def test_genesis_twice_and_invite_by_non_admin_are_refused(hive):
    admin, joiner = hive
    with pytest.raises(RpcException, match="already in hive"):
        membership.genesis(admin.ctx, "again")
    join(admin, joiner, invite(admin))
    with pytest.raises(RpcException, match="only an admin may invite; this node is neophyte"):
        membership.invite(joiner.ctx, None, None, None)


@pytest.mark.parametrize("kw,message", [
    ({"valid_hours": 0}, "valid_hours: expected an integer from 1 to 720"),
    ({"tier": "admin"}, "tier: expected one of neophyte|member"),
    ({"peer_id": "02zz"}, "peer_id: expected a node id"),
])
def test_invite_names_the_bad_parameter(hive, kw, message):
    admin, _ = hive
    with pytest.raises(RpcException, match=message):
        invite(admin, **kw)


# -- tickets --------------------------------------------------------------------------
def test_expired_ticket(hive, clock):
    admin, joiner = hive
    ticket = invite(admin, valid_hours=1)
    clock.advance(3600)
    before = admin.snapshot(), joiner.snapshot()
    with pytest.raises(RpcException, match="ticket: expired"):
        handshake.start_join(joiner.ctx, ticket, None)
    with capture_logs() as logs:
        admin.receive(joiner, hello(ticket=ticket))
    assert refusals(logs) == ["ticket expired"]
    assert told(admin, joiner) == [("ab" * 16, "ticket_expired")]
    assert (admin.snapshot(), joiner.snapshot()) == before


def _altered(ticket: str, position: int) -> str:
    body = ticket[len("HIVE1:"):]
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[position] ^= 0x01
    return "HIVE1:" + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


@pytest.mark.usefixtures("every_refusal_logged")
def test_ticket_with_any_byte_altered_is_refused(hive):
    admin, joiner = hive
    ticket = invite(admin)
    n = len(base64.urlsafe_b64decode(ticket[6:] + "=" * (-len(ticket[6:]) % 4)))
    before = admin.snapshot(), joiner.snapshot()
    for position in range(n):
        bad = _altered(ticket, position)
        with pytest.raises(RpcException, match="ticket: "):
            handshake.start_join(joiner.ctx, bad, None)
        with capture_logs() as logs:
            admin.receive(joiner, hello(session="%032x" % position, ticket=bad))
        assert len(refusals(logs)) == 1, (position, logs)
        admin.ctx.hello_limiter = type(admin.ctx.hello_limiter)(admin.ctx.clock, 1e9, 10**9)
    assert (admin.snapshot(), joiner.snapshot()) == before


def test_ticket_signed_by_a_non_admin_is_refused(hive, sides):
    admin, joiner = hive
    join(admin, joiner, invite(admin))
    # The member forges a ticket naming the real admin, signed with its own key.
    real = json.loads(base64.urlsafe_b64decode(invite(admin)[6:] + "=="))
    fields = {k: v for k, v in real.items() if k != "sig"}
    fields["ticket_id"] = "cd" * 16
    forged = membership.encode_ticket(
        {**fields, "sig": signing.sign(joiner.lightning, fields["hive_id"], "TICKET", fields)})
    outsider = sides("outsider")
    with pytest.raises(RpcException, match="ticket: the signature is not the issuing admin's"):
        handshake.start_join(outsider.ctx, forged, None)
    before = admin.snapshot()
    with capture_logs() as logs:
        admin.receive(outsider, hello(ticket=forged))
    assert refusals(logs) == ["ticket was not issued by this admin as presented"]
    assert admin.snapshot() == before


def test_reused_ticket_is_refused(hive, sides):
    admin, joiner = hive
    ticket = invite(admin)
    assert join(admin, joiner, ticket)["state"] == "joined"
    other = sides("other")
    before = admin.snapshot()
    session = handshake.start_join(other.ctx, ticket, None)
    with capture_logs() as logs:
        pump(admin, other)
    assert refusals(logs) == ["ticket already used"]
    assert admin.snapshot() == before
    assert other.members() == {}
    # The admin said why, and the joiner's session ended at once with that reason.
    result = handshake.join_result(other.ctx, session)
    assert (result["state"], result["reason"]) == ("refused", handshake.REFUSED_BECAUSE[
        "ticket_used"])


def test_ticket_bound_to_another_node_is_refused(hive, sides):
    admin, joiner = hive
    other = sides("other")
    ticket = invite(admin, peer_id=other.node_id)
    with pytest.raises(RpcException, match="ticket: issued for node"):
        handshake.start_join(joiner.ctx, ticket, None)
    before = admin.snapshot()
    with capture_logs() as logs:
        admin.receive(joiner, hello(ticket=ticket))
    assert refusals(logs) == ["ticket is bound to another node"]
    assert told(admin, joiner) == [("ab" * 16, "ticket_bound")]
    assert admin.snapshot() == before
    assert join(admin, other, ticket)["state"] == "joined"


# -- HELLO ----------------------------------------------------------------------------
def test_hello_from_a_current_member_or_a_banned_node(hive, sides):
    admin, joiner = hive
    join(admin, joiner, invite(admin))
    banned = sides("banned")
    with admin.db.transaction() as conn:
        hive_store.add_ban(conn, peer_id=banned.node_id, reason="test", now=0)
    before = admin.snapshot()
    with capture_logs() as logs:
        admin.receive(joiner, hello(ticket=invite(admin)))
        admin.receive(banned, hello(ticket=invite(admin)))
    assert refusals(logs) == ["already a member (neophyte)", "banned"]
    assert admin.snapshot()[2] == before[2]        # no session was opened


@pytest.mark.usefixtures("every_refusal_logged")
def test_hello_flood_is_rate_limited_before_any_work(hive):
    admin, joiner = hive
    tickets = [invite(admin) for _ in range(20)]
    admin.lightning.calls.clear()
    with capture_logs() as logs:
        for i, ticket in enumerate(tickets):
            admin.receive(joiner, hello(session="%032x" % i, ticket=ticket))
    reasons = refusals(logs)
    assert reasons.count("rate limited") == 20 - HELLO_BURST
    # the first opened a session (one signature check); the rest cost nothing
    assert reasons[:HELLO_BURST - 1] == ["a session with this peer is already open"] * 2
    assert admin.lightning.calls.count("checkmessage") == 1


def test_hook_drops_a_peer_past_its_message_budget(tmp_path, clock):
    hive = Hive(clock=clock)
    hive.start(cfg.from_init({}, str(tmp_path)), lightning=None)
    try:
        with capture_logs() as logs:
            for _ in range(MESSAGE_BURST + 50):
                hive.on_custommsg("02" + "11" * 32, hello())
            hive.engine.submit(lambda: None).result(timeout=5)
        # 50 dropped; the log line is itself rate-limited per peer (refusal_log)
        assert sum(e["event"] == "wire.rate_limited" for e in logs) == REFUSAL_LOG_BURST
        # every message within the budget reached its handler and was refused there
        logged = sum(e["event"] == "handshake.refused" for e in logs)
        assert logged == REFUSAL_LOG_BURST
        assert logged + refusal_logs.suppressed("handshake.refused", "02" + "11" * 32) == \
            MESSAGE_BURST
    finally:
        hive.stop()


def test_sessions_are_bounded_and_one_per_peer(hive, sides):
    admin, joiner = hive
    admin.config = admin.config.__class__(**{**admin.config.public(),
                                             "max_handshake_sessions": 1})
    handshake.start_join(joiner.ctx, invite(admin), None)
    for msg in joiner.outgoing(admin):
        admin.receive(joiner, msg)
        with capture_logs() as logs:
            admin.receive(joiner, msg)             # the same HELLO again
    assert refusals(logs) == ["duplicate of a known session"]
    with capture_logs() as logs:
        admin.receive(joiner, hello(session="ef" * 16, ticket=invite(admin)))
    assert refusals(logs) == ["a session with this peer is already open"]
    second = sides("second")
    with capture_logs() as logs:
        admin.receive(second, hello(ticket=invite(admin)))
    assert refusals(logs) == ["too many open sessions (hive-max-handshake-sessions)"]


# -- CHALLENGE ------------------------------------------------------------------------
def test_unsolicited_challenge_makes_us_sign_nothing(hive, sides):
    _, joiner = hive
    stranger = sides("stranger")
    joiner.lightning.calls.clear()
    before = joiner.snapshot()
    with capture_logs() as logs:
        joiner.receive(stranger, encode(MsgType.CHALLENGE, {
            "session": "ab" * 16, "hive_id": "cd" * 16, "nonce": "ef" * 32}))
    assert refusals(logs) == ["no open session of ours awaits it"]
    assert "signmessage" not in joiner.lightning.calls
    assert joiner.snapshot() == before


def test_challenge_from_another_peer_than_our_admin(hive, sides):
    admin, joiner = hive
    session = handshake.start_join(joiner.ctx, invite(admin), None)
    stranger = sides("stranger")
    joiner.lightning.calls.clear()
    with capture_logs() as logs:
        joiner.receive(stranger, encode(MsgType.CHALLENGE, {
            "session": session, "hive_id": "cd" * 16, "nonce": "ef" * 32}))
    assert refusals(logs) == ["no open session of ours awaits it"]
    assert "signmessage" not in joiner.lightning.calls
    assert joiner.dispatcher.load("handshake_joiner", session).state == "hello_sent"


# -- ATTEST ---------------------------------------------------------------------------
def _to_attest(admin, joiner):
    """Run the handshake until the joiner's ATTEST is queued; return (session, attest)."""
    session = handshake.start_join(joiner.ctx, invite(admin), None)
    for msg in joiner.outgoing(admin):
        admin.receive(joiner, msg)
    for msg in admin.outgoing(joiner):
        joiner.receive(admin, msg)
    [attest] = joiner.outgoing(admin)
    return session, decode(attest)[1]


def test_attest_without_a_session(hive):
    admin, joiner = hive
    before = admin.snapshot()
    with capture_logs() as logs:
        admin.receive(joiner, encode(MsgType.ATTEST, {
            "session": "ab" * 16, "nonce": "00" * 32, "pubkey": joiner.node_id,
            "plugin_version": "0", "features": [], "sig": "y" * 104}))
    assert refusals(logs) == ["no open session awaits it"]
    assert admin.snapshot() == before


@pytest.mark.parametrize("change,failure", [
    (lambda a, j, o: {"nonce": "00" * 32}, "ATTEST nonce is not this session's"),
    (lambda a, j, o: {"pubkey": o.node_id}, "ATTEST pubkey is not the sender's"),
    (lambda a, j, o: {"sig": "OTHER"}, "ATTEST signature is not the sender's"),
    (lambda a, j, o: {"features": "not-a-list"}, "ATTEST malformed: features"),
])
def test_bad_attest_fails_the_session_and_admits_no_one(hive, sides, change, failure):
    admin, joiner = hive
    other = sides("other")
    session, attest = _to_attest(admin, joiner)
    attest.update(change(admin, joiner, other))
    if attest["sig"] == "OTHER":      # another key signs exactly the manifest the joiner signed
        manifest = {k: attest[k] for k in ("session", "nonce", "pubkey", "plugin_version",
                                           "features")}
        hive_id = hive_store.get_meta(admin.db.conn())["hive_id"]
        attest["sig"] = signing.sign(other.lightning, hive_id, "ATTEST",
                                     {**manifest, "admin": admin.node_id})
    attest.pop("v")
    admin.receive(joiner, encode(MsgType.ATTEST, attest))
    inst = admin.dispatcher.load("handshake_admin", f"{joiner.node_id}:{session}")
    assert inst.state == "failed" and inst.data["failure"].startswith(failure)
    assert joiner.node_id not in admin.members()
    assert admin.outgoing(joiner) == []


def test_attest_after_the_session_expired(hive, clock):
    admin, joiner = hive
    session, attest = _to_attest(admin, joiner)
    clock.advance(admin.config.handshake_timeout_seconds)
    admin.dispatcher.fire_due()
    attest.pop("v")
    with capture_logs() as logs:
        admin.receive(joiner, encode(MsgType.ATTEST, attest))
    assert refusals(logs) == ["no open session awaits it"]
    assert joiner.node_id not in admin.members()


def test_duplicated_attest_admits_once(hive):
    admin, joiner = hive
    session, attest = _to_attest(admin, joiner)
    attest.pop("v")
    msg = encode(MsgType.ATTEST, attest)
    admin.receive(joiner, msg)
    with capture_logs() as logs:
        admin.receive(joiner, msg)
    assert refusals(logs) == ["no open session awaits it"]
    assert len(admin.outgoing(joiner)) == 1          # one WELCOME


# -- WELCOME --------------------------------------------------------------------------
def _welcome_for(admin, joiner):
    session, attest = _to_attest(admin, joiner)
    for msg in joiner.outgoing(admin):
        admin.receive(joiner, msg)
    attest.pop("v")
    admin.receive(joiner, encode(MsgType.ATTEST, attest))
    [welcome] = admin.outgoing(joiner)
    return session, decode(welcome)[1]


def test_welcome_before_our_attest_is_refused(hive, sides):
    admin, joiner = hive
    session = handshake.start_join(joiner.ctx, invite(admin), None)
    before = joiner.snapshot()
    with capture_logs() as logs:
        joiner.receive(admin, encode(MsgType.WELCOME, {"session": session}))
    assert refusals(logs) == ["no session of ours sent ATTEST to this peer"]
    assert joiner.snapshot() == before


def test_welcome_from_another_peer_is_refused(hive, sides):
    admin, joiner = hive
    session, welcome = _welcome_for(admin, joiner)
    stranger = sides("stranger")
    welcome.pop("v")
    with capture_logs() as logs:
        joiner.receive(stranger, encode(MsgType.WELCOME, welcome))
    assert refusals(logs) == ["no session of ours sent ATTEST to this peer"]
    assert hive_store.get_meta(joiner.db.conn()) is None
    joiner.receive(admin, encode(MsgType.WELCOME, welcome))     # the real one still works
    assert hive_store.get_meta(joiner.db.conn()) is not None


@pytest.mark.parametrize("part", ["genesis", "admission", "members"])
def test_welcome_with_a_bad_admin_signature_fails_the_session(hive, sides, part):
    admin, joiner = hive
    session, welcome = _welcome_for(admin, joiner)
    forger = sides("forger")
    record = welcome["members"][0] if part == "members" else welcome[part]
    kind = "GENESIS" if part == "genesis" else "ADMISSION"
    # another key signs exactly the record the admin signed
    record["sig"] = signing.sign(forger.lightning, welcome["hive_id"], kind,
                                 {k: v for k, v in record.items() if k != "sig"})
    welcome.pop("v")
    joiner.receive(admin, encode(MsgType.WELCOME, welcome))
    inst = joiner.dispatcher.load("handshake_joiner", session)
    assert inst.state == "failed" and "not" in inst.data["failure"]
    assert hive_store.get_meta(joiner.db.conn()) is None and joiner.members() == {}


# -- MEMBER_ADDED ---------------------------------------------------------------------
def test_no_ordinary_peer_can_add_a_member(hive, sides):
    admin, joiner = hive
    join(admin, joiner, invite(admin))
    third, outsider = sides("third"), sides("outsider")
    meta = hive_store.get_meta(joiner.db.conn())
    # a member signs an admission itself
    forged = membership.sign_admission(joiner.ctx, meta["hive_id"], outsider.node_id,
                                       "member", None)
    before = joiner.snapshot()
    with capture_logs() as logs:
        joiner.receive(admin, encode(MsgType.MEMBER_ADDED, {
            "hive_id": meta["hive_id"], "admission": forged}))
        # a real admission, but sent by a non-member
        real = membership.sign_admission(admin.ctx, meta["hive_id"], third.node_id,
                                         "neophyte", None)
        joiner.receive(outsider, encode(MsgType.MEMBER_ADDED, {
            "hive_id": meta["hive_id"], "admission": real}))
        # an admission granting admin
        grant = membership.sign_admission(admin.ctx, meta["hive_id"], third.node_id,
                                          "admin", None)
        joiner.receive(admin, encode(MsgType.MEMBER_ADDED, {
            "hive_id": meta["hive_id"], "admission": grant}))
    assert refusals(logs) == ["admission is not signed by the hive's admin",
                              "sender is not a member", "an admission cannot grant admin"]
    assert joiner.snapshot() == before


# -- malformed payloads ---------------------------------------------------------------
@pytest.mark.parametrize("payload", [
    "8001" + b"HIVE".hex(),                                     # truncated: no body
    "8001" + b"HIVE".hex() + b'{"v":1,"session":"ab'.hex(),     # truncated JSON
    "8001" + b"HIVE".hex() + b"not json".hex(),
    "8001" + b"HIVE".hex() + ("[" * 50 + "]" * 50).encode().hex(),
    "8001" + b"HIVE".hex() + b'{"v":1,"session":5,"ticket":[]}'.hex(),
    "8001" + b"HIVE".hex() + b'{"v":"1"}'.hex(),
    "8001" + b"HIVE".hex() + b"\xff\xfe".hex(),
    "8001" + b"HIVE".hex() + "37" * 70000,
    "8005" + b"HIVE".hex() + b'{"v":1}'.hex(),
    "8001" + b"HIVE".hex() + "0",
])
def test_malformed_payloads_change_nothing(hive, payload):
    admin, joiner = hive
    before = admin.snapshot()
    admin.lightning.calls.clear()
    admin.receive(joiner, payload)
    assert admin.snapshot() == before
    assert "signmessage" not in admin.lightning.calls


OTHER_ID = "03" + "77" * 32


@pytest.mark.parametrize("mutate,failure", [
    (lambda w, me: w.update(hive_id="ab" * 16), "hive_id differs from the ticket's"),
    (lambda w, me: w["genesis"].update(admin=OTHER_ID), "genesis record does not define"),
    (lambda w, me: w["genesis"].update(name="renamed"), "genesis record does not define"),
    (lambda w, me: w["admission"].update(member=OTHER_ID), "our admission does not match"),
    (lambda w, me: w["admission"].update(tier="member"), "our admission does not match"),
    (lambda w, me: w["admission"].update(ticket_id="00" * 16), "our admission does not match"),
    (lambda w, me: w["members"].append(dict(w["members"][0])), "member list repeats"),
    (lambda w, me: w["members"].append(dict(w["admission"])), "member list repeats"),
    (lambda w, me: w.update(members=[]), "member list lacks the admin"),
    (lambda w, me: w["members"].append({**w["members"][0], "member": OTHER_ID,
                                        "tier": "member", "hive_id": "ab" * 16}),
     "member list holds another hive's admission"),
])
def test_welcome_checks_fail_the_session_in_order(hive, mutate, failure):
    admin, joiner = hive
    session, welcome = _welcome_for(admin, joiner)
    mutate(welcome, joiner.node_id)
    welcome.pop("v")
    joiner.lightning.calls.clear()
    joiner.receive(admin, encode(MsgType.WELCOME, welcome))
    inst = joiner.dispatcher.load("handshake_joiner", session)
    assert inst.state == "failed" and inst.data["failure"].startswith("WELCOME: " + failure)
    assert "checkmessage" not in joiner.lightning.calls   # refused before any signature work
    assert hive_store.get_meta(joiner.db.conn()) is None and joiner.members() == {}


def test_challenge_for_another_hive_fails_the_session_without_signing(hive):
    admin, joiner = hive
    session = handshake.start_join(joiner.ctx, invite(admin), None)
    joiner.lightning.calls.clear()
    joiner.receive(admin, encode(MsgType.CHALLENGE, {
        "session": session, "hive_id": "ab" * 16, "nonce": "ef" * 32}))
    inst = joiner.dispatcher.load("handshake_joiner", session)
    assert inst.state == "failed" and "hive_id differs" in inst.data["failure"]
    assert "signmessage" not in joiner.lightning.calls


def test_duplicated_challenge_and_welcome_are_refused(hive):
    admin, joiner = hive
    session = handshake.start_join(joiner.ctx, invite(admin), None)
    for msg in joiner.outgoing(admin):
        admin.receive(joiner, msg)
    [challenge] = admin.outgoing(joiner)
    joiner.receive(admin, challenge)
    joiner.lightning.calls.clear()
    with capture_logs() as logs:
        joiner.receive(admin, challenge)          # again, after we attested
    assert refusals(logs) == ["no open session of ours awaits it"]
    assert "signmessage" not in joiner.lightning.calls
    for msg in joiner.outgoing(admin):
        admin.receive(joiner, msg)
    [welcome] = admin.outgoing(joiner)
    joiner.receive(admin, welcome)
    assert joiner.dispatcher.load("handshake_joiner", session).state == "joined"
    before = joiner.snapshot()
    with capture_logs() as logs:
        joiner.receive(admin, welcome)
    assert refusals(logs) == ["no session of ours sent ATTEST to this peer"]
    assert joiner.snapshot() == before


def test_attest_after_its_deadline_is_refused_even_before_the_tick(hive, clock):
    admin, joiner = hive
    session, attest = _to_attest(admin, joiner)
    clock.advance(admin.config.handshake_timeout_seconds + 1)     # no tick has run
    attest.pop("v")
    with capture_logs() as logs:
        admin.receive(joiner, encode(MsgType.ATTEST, attest))
    assert refusals(logs) == ["no open session awaits it"]
    assert joiner.node_id not in admin.members()


def test_one_join_at_a_time_and_no_genesis_during_a_join(hive, sides):
    admin, joiner = hive
    other_admin = sides("other_admin")
    membership.genesis(other_admin.ctx, "other")
    handshake.start_join(joiner.ctx, invite(admin), None)
    with pytest.raises(RpcException, match="already in progress"):
        handshake.start_join(joiner.ctx, invite(other_admin), None)
    with pytest.raises(RpcException, match="hive-join is in progress"):
        membership.genesis(joiner.ctx, "mine")


def test_hive_fills_up_between_hello_and_attest(hive, sides):
    admin, joiner = hive
    admin.config = admin.config.__class__(**{**admin.config.public(), "max_members": 2})
    second = sides("second")
    s1 = handshake.start_join(joiner.ctx, invite(admin), None)
    s2 = handshake.start_join(second.ctx, invite(admin), None)
    pump(admin, joiner, second)
    states = {joiner.dispatcher.load("handshake_joiner", s1).state,
              second.dispatcher.load("handshake_joiner", s2).state}
    assert states == {"joined", "refused"}     # the late one is told at ATTEST, at once
    assert len(admin.members()) == 2
    late, sid = (joiner, s1) if joiner.node_id not in admin.members() else (second, s2)
    failed = admin.dispatcher.load("handshake_admin", f"{late.node_id}:{sid}")
    assert failed.state == "failed" and "hive is full" in failed.data["failure"]
    assert late.dispatcher.load("handshake_joiner", sid).data["refused"] == "hive_full"


def test_welcome_carries_two_admissions_and_the_sync_brings_the_rest(hive, sides):
    admin, joiner = hive
    join(admin, joiner, invite(admin))
    third = sides("third")
    handshake.start_join(third.ctx, invite(admin), None)
    welcomes = []

    def observe(_sender, _receiver, msg):
        msg_type, body = decode(msg)
        if msg_type == MsgType.WELCOME:
            welcomes.append(body)
    pump(admin, third, observe=observe)
    [welcome] = welcomes
    assert welcome["admission"]["member"] == third.node_id
    assert [m["member"] for m in welcome["members"]] == [admin.node_id]
    # The membership sync the WELCOME set off (third's hash to the admin) brought the rest.
    assert third.members() == admin.members() == {
        admin.node_id: "admin", joiner.node_id: "neophyte", third.node_id: "neophyte"}


def test_a_node_that_left_comes_back_only_as_a_neophyte(hive):
    admin, joiner = hive
    join(admin, joiner, invite(admin))
    admin.dispatcher.fire("member_tier", joiner.node_id, "leave")
    before = admin.snapshot()
    with capture_logs() as logs:
        admin.receive(joiner, hello(ticket=invite(admin, tier="member")))
    assert refusals(logs) == ["a returning member comes back as a neophyte "
                              "(this ticket grants member)"]
    assert admin.snapshot()[2] == before[2]


def test_a_banned_node_cannot_rejoin(hive):
    admin, joiner = hive
    join(admin, joiner, invite(admin))
    admin.dispatcher.fire("member_tier", joiner.node_id, "ban", votes=1, eligible=1)
    before = admin.snapshot()
    with capture_logs() as logs:
        admin.receive(joiner, hello(ticket=invite(admin)))
    assert refusals(logs) == ["banned"]
    assert admin.snapshot()[2] == before[2]


# -- one instant per message ----------------------------------------------------------
class SlowSignatures:
    """The node's lightningd, but each signature call takes `seconds` of (manual) time:
    the deadline passes while the handler is checking or signing."""

    def __init__(self, side, clock, seconds):
        self.inner, self.clock, self.seconds = side.lightning, clock, seconds

    def call(self, method, params=None):
        if method in ("checkmessage", "signmessage"):
            self.clock.advance(self.seconds)
        return self.inner.call(method, params)


def test_attest_that_arrives_before_the_deadline_is_decided_then(hive, clock):
    admin, joiner = hive
    session, attest = _to_attest(admin, joiner)
    clock.advance(admin.config.handshake_timeout_seconds - 0.01)
    admin.ctx.lightning = SlowSignatures(admin, clock, 0.05)
    attest.pop("v")
    with capture_logs() as logs:
        admin.receive(joiner, encode(MsgType.ATTEST, attest))
    assert not [e for e in logs if e["log_level"] in ("error", "critical")]
    assert admin.dispatcher.load("handshake_admin",
                                 f"{joiner.node_id}:{session}").state == "welcomed"
    assert admin.members()[joiner.node_id] == "neophyte"
    assert len(admin.outgoing(joiner)) == 1          # the WELCOME


def test_welcome_that_arrives_before_the_deadline_is_decided_then(hive, clock):
    admin, joiner = hive
    session, welcome = _welcome_for(admin, joiner)
    clock.advance(joiner.config.handshake_timeout_seconds - 0.01)
    joiner.ctx.lightning = SlowSignatures(joiner, clock, 0.05)    # many admissions to check
    welcome.pop("v")
    with capture_logs() as logs:
        joiner.receive(admin, encode(MsgType.WELCOME, welcome))
    assert not [e for e in logs if e["log_level"] in ("error", "critical")]
    assert joiner.dispatcher.load("handshake_joiner", session).state == "joined"
    assert joiner.members() == admin.members()


def test_challenge_that_arrives_before_the_deadline_is_decided_then(hive, clock):
    admin, joiner = hive
    session = handshake.start_join(joiner.ctx, invite(admin), None)
    for msg in joiner.outgoing(admin):
        admin.receive(joiner, msg)
    [challenge] = admin.outgoing(joiner)
    clock.advance(joiner.config.handshake_timeout_seconds - 0.01)
    joiner.ctx.lightning = SlowSignatures(joiner, clock, 0.05)    # signing the manifest
    with capture_logs() as logs:
        joiner.receive(admin, challenge)
    assert not [e for e in logs if e["log_level"] in ("error", "critical")]
    assert joiner.dispatcher.load("handshake_joiner", session).state == "attest_sent"
    assert len(joiner.outgoing(admin)) == 1


# -- open sessions are the tables' live states ----------------------------------------
@pytest.mark.parametrize("spec,live", [(tables.JOINER, lambda: handshake.LIVE_JOINER),
                                       (tables.ADMIN, lambda: handshake.LIVE_ADMIN)])
def test_open_sessions_are_exactly_the_non_terminal_states_of_the_table(spec, live):
    # Every state a session can still leave counts as open (one-at-a-time, the session
    # bound, hive-join's `done`), and no finished one does.
    assert set(live()) == set(spec.states) - set(spec.terminal)
    assert spec.live_states == live()
    assert membership.LIVE_JOINER == handshake.LIVE_JOINER


def test_a_leaked_ticket_holds_at_most_one_session(hive, sides):
    admin, joiner = hive
    admin.config = admin.config.__class__(**{**admin.config.public(),
                                             "max_handshake_sessions": 3})
    leaked = invite(admin)                          # unbound: anyone holding it may try
    strangers = [sides(f"stranger{i}") for i in range(3)]
    with capture_logs() as logs:
        for i, stranger in enumerate(strangers):
            admin.receive(stranger, hello(session="%032x" % i, ticket=leaked))
    assert refusals(logs) == ["a session with this ticket is already open"] * 2
    # the slots the strangers could not take are still there for honest joiners
    assert join(admin, joiner, invite(admin))["state"] == "joined"
    second = sides("second")
    assert join(admin, second, invite(admin))["state"] == "joined"


def test_sessions_open_before_the_upgrade_count_against_their_ticket(tmp_path):
    from storage import machine_rows
    from storage.db import Database
    db = Database(str(tmp_path / "old.db"))
    db.migrate(target=3)                   # before sessions had a ticket column
    with db.transaction() as conn:
        machine_rows.insert(conn, "handshake_admin", "02aa:01", {
            "state": "challenge_sent", "deadline": 60.0, "deadline_trigger": "expire",
            "created_at": 1.0, "state_since": 1.0, "version": 0,
            "data": {"peer_id": "02aa", "ticket_id": "cd" * 16}}, {"peer_id": "02aa"})
    db.migrate()
    live = handshake.LIVE_ADMIN
    assert hive_store.session_for_ticket(db.conn(), "handshake_admin", "cd" * 16,
                                         live) == "02aa:01"
    assert hive_store.session_for_ticket(db.conn(), "handshake_admin", "ef" * 16,
                                         live) is None
    db.close()


# -- a WELCOME that came too late -----------------------------------------------------
def _admitted_but_not_welcomed(admin, joiner, clock, ticket):
    """The admin admits the joiner, but its WELCOME arrives after the joiner's session
    expired (the joiner was away longer than the handshake timeout)."""
    session, attest = None, None
    session = handshake.start_join(joiner.ctx, ticket, None)
    for msg in joiner.outgoing(admin):
        admin.receive(joiner, msg)
    for msg in admin.outgoing(joiner):
        joiner.receive(admin, msg)
    for msg in joiner.outgoing(admin):
        admin.receive(joiner, msg)              # ATTEST: admitted, WELCOME queued
    assert joiner.node_id in admin.members()
    clock.advance(joiner.config.handshake_timeout_seconds + 1)
    joiner.dispatcher.fire_due()
    with capture_logs() as logs:
        for msg in admin.outgoing(joiner):
            joiner.receive(admin, msg)          # too late
    assert refusals(logs) == ["no session of ours sent ATTEST to this peer"]
    return session


def test_a_late_welcome_then_the_same_ticket_again_completes_the_join(hive, sides, clock):
    from storage import transition_log
    admin, joiner = hive
    member = sides("member")
    assert join(admin, member, invite(admin))["state"] == "joined"
    ticket = invite(admin)
    first = _admitted_but_not_welcomed(admin, joiner, clock, ticket)
    pump(admin, member)                         # the fleet learns of the new member
    result = handshake.join_result(joiner.ctx, first)
    assert result["state"] == "expired" and result["done"]
    assert "may have admitted" in result["reason"] and "same ticket" in result["reason"]
    ticket_id = membership.decode_ticket(ticket)[0]["ticket_id"]
    used = hive_store.get_ticket(admin.db.conn(), ticket_id)
    admission = hive_store.member(admin.db.conn(), joiner.node_id)["admission"]

    session = handshake.start_join(joiner.ctx, ticket, None)
    pump(admin, joiner)
    assert handshake.join_result(joiner.ctx, session)["state"] == "joined"
    assert admin.outgoing(member) == []         # no second MEMBER_ADDED
    assert joiner.members() == admin.members() == member.members()
    # the same admission, not a new one; the ticket used once; the member added once
    assert hive_store.member(joiner.db.conn(), joiner.node_id)["admission"] == admission
    assert hive_store.member(admin.db.conn(), joiner.node_id)["admission"] == admission
    assert hive_store.get_ticket(admin.db.conn(), ticket_id) == used
    log = transition_log.for_instance(admin.db.conn(), "member_tier", joiner.node_id)
    assert [e["trigger"] for e in log] == ["create"]
    again = admin.dispatcher.load("handshake_admin", f"{joiner.node_id}:{session}")
    assert again.state == "welcomed" and again.data["admitted"] is True


def test_a_late_welcome_with_an_expired_ticket_still_completes(hive, clock):
    admin, joiner = hive
    ticket = invite(admin, valid_hours=1)
    _admitted_but_not_welcomed(admin, joiner, clock, ticket)
    clock.advance(2 * 3600)                     # away past the ticket's expiry too
    assert join(admin, joiner, ticket)["state"] == "joined"
    assert joiner.members() == admin.members()


def test_a_re_hello_still_needs_the_key(hive, sides, clock):
    admin, joiner = hive
    ticket = invite(admin)
    _admitted_but_not_welcomed(admin, joiner, clock, ticket)
    session = handshake.start_join(joiner.ctx, ticket, None)
    for msg in joiner.outgoing(admin):
        admin.receive(joiner, msg)
    for msg in admin.outgoing(joiner):
        joiner.receive(admin, msg)
    [attest] = joiner.outgoing(admin)
    attest = decode(attest)[1]
    attest.pop("v")
    other = sides("other")                      # another key signs the same manifest
    manifest = {k: attest[k] for k in ("session", "nonce", "pubkey", "plugin_version",
                                       "features")}
    hive_id = hive_store.get_meta(admin.db.conn())["hive_id"]
    attest["sig"] = signing.sign(other.lightning, hive_id, "ATTEST",
                                 {**manifest, "admin": admin.node_id})
    admin.receive(joiner, encode(MsgType.ATTEST, attest))
    inst = admin.dispatcher.load("handshake_admin", f"{joiner.node_id}:{session}")
    assert inst.state == "failed" and "signature" in inst.data["failure"]
    assert admin.outgoing(joiner) == []


def test_a_re_hello_is_refused_once_the_member_is_banned(hive, clock):
    admin, joiner = hive
    ticket = invite(admin)
    _admitted_but_not_welcomed(admin, joiner, clock, ticket)
    admin.dispatcher.fire("member_tier", joiner.node_id, "ban", votes=1, eligible=1)
    before = admin.snapshot()
    handshake.start_join(joiner.ctx, ticket, None)
    with capture_logs() as logs:
        pump(admin, joiner)
    assert refusals(logs) == ["banned"]
    assert admin.snapshot()[2] == before[2]
