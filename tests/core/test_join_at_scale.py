"""A hive larger than one message can list: a joiner gets its own admission and the admin's
in WELCOME and every other member by the membership sync, in paced chunks that each fit a
custom message; a member that missed the admissions catches up the same way. Real
handlers, real SQLite, real admin signatures (seeded as tests/sim seeds a hive), a
ManualClock; messages are delivered only once the outbox says they are due."""
import pytest

from handlers.council import sync as council_sync
from handlers.membership import handshake
from handlers.membership import members as membership
from handlers.wire import messages, signing
from handlers.wire.framing import MAX_MESSAGE_BYTES, MsgType, decode, peek
from hive_sides import Side, form_hive
from storage import hive as hive_store
from storage import outbox
from tests.standin.keys import NodeKey

MAX = 1000                  # hive-max-members at most
HANDSHAKE = (MsgType.HELLO, MsgType.CHALLENGE, MsgType.ATTEST, MsgType.WELCOME)


def seed_members(admin: Side, count: int) -> None:
    """`count` members admitted by the admin's real signature, without handshakes."""
    hive_id = hive_store.get_meta(admin.db.conn())["hive_id"]
    with admin.db.transaction():
        for i in range(count):
            member = NodeKey.from_seed(f"seeded-{i}").node_id
            membership.add_member(admin.ctx, membership.sign_admission(
                admin.ctx, hive_id, member, "member", None))


def deliver_due(clock, sides, sent: list) -> None:
    """Deliver what each outbox holds due now, one second at a time, until nothing is
    queued; `sent` collects (type, bytes, body) of every message."""
    for _ in range(600):
        moved = False
        for a in sides:
            rows = outbox.due(a.db.conn(), clock.now(), limit=10_000)
            with a.db.transaction() as c:
                for r in rows:
                    outbox.mark_sent(c, r["seq"], clock.now())
            for r in rows:
                to = next((s for s in sides if s.node_id == r["peer_id"]), None)
                # Seeded members are offline; so is a side not connected to the sender
                # (the handshake's own messages go to the admin it connected to).
                if to is None or a.node_id not in to.lightning.connected and peek(
                        r["msg_hex"]) not in HANDSHAKE:
                    continue
                msg_type, body = decode(r["msg_hex"])
                sent.append((msg_type, len(r["msg_hex"]) // 2, body))
                to.receive(a, r["msg_hex"])
                moved = True
        if not moved and not any(outbox.pending_count(s.db.conn()) for s in sides):
            return
        clock.advance(1)
    raise AssertionError("messages still queued after 600 s")


def hashes(sides) -> set[str]:
    return {council_sync.membership_hash(s.ctx)[0] for s in sides}


@pytest.fixture
def full_hive(tmp_path, clock):
    """`a` (admin) and `b` joined by handshakes, then 997 members seeded on `a` only: `b`
    missed their admissions. `j` is about to join as the 1,000th member."""
    opts = {"hive-max-members": MAX}
    a, b, j = (Side(n, tmp_path, clock, **opts) for n in ("a", "b", "j"))
    form_hive(a, b)
    seed_members(a, MAX - 3)
    yield a, b, j
    for s in (a, b, j):
        s.close()


def test_a_joiner_gets_a_thousand_members_by_sync_in_messages_that_fit(full_hive, clock):
    a, b, j = full_hive
    admissions = [m["admission"] for m in hive_store.members(a.db.conn())]
    # What the old WELCOME would have had to carry does not fit one message.
    assert len(signing.canonical_json(admissions)) > 4 * MAX_MESSAGE_BYTES
    ticket = membership.invite(a.ctx, None, None, None)["ticket"]
    j.lightning.connected = {a.node_id}
    a.lightning.connected = {b.node_id, j.node_id}
    handshake.start_join(j.ctx, ticket, None)
    sent: list = []
    deliver_due(clock, [a, b, j], sent)

    [welcome] = [body for t, _, body in sent if t == MsgType.WELCOME]
    assert [m["member"] for m in welcome["members"]] == [a.node_id]
    syncs = [(size, body) for t, size, body in sent if t == MsgType.MEMBERSHIP_SYNC]
    assert len(syncs) > 4
    assert all(size <= MAX_MESSAGE_BYTES for _, size, _ in sent)
    assert all(len(body[s]) <= messages.MAX_SYNC_ITEMS for _, body in syncs
               for s in council_sync.SECTIONS)
    assert len(j.members()) == MAX and j.members() == a.members()
    assert hashes([a, j]) == {council_sync.membership_hash(a.ctx)[0]}

    # b, which missed the seeded admissions, catches up at its next exchange of hashes.
    assert len(b.members()) == 3
    j.lightning.connected = {a.node_id, b.node_id}
    b.lightning.connected = {a.node_id, j.node_id}
    clock.advance(b.config.sync_interval)
    for s in (a, b, j):
        council_sync.on_tick(s.ctx)
    deliver_due(clock, [a, b, j], sent)
    assert b.members() == a.members() and len(hashes([a, b, j])) == 1
    assert all(size <= MAX_MESSAGE_BYTES for _, size, _ in sent)


def test_sync_chunks_beyond_one_burst_are_paced_to_the_receivers_bucket(full_hive, clock):
    a, _, _ = full_hive
    burst, rate = a.ctx.full_sync_limiter.burst, a.ctx.full_sync_limiter.rate
    due = council_sync.pace(a.ctx, 3 * burst + 1)
    assert due[:burst] == [clock.now()] * burst
    gap = max(burst / rate, a.config.tick_seconds)
    assert due[burst] == due[2 * burst - 1] == clock.now() + gap
    assert due[-1] == clock.now() + 3 * gap
