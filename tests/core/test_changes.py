"""What authorizing a member message reads is cached until the membership changes, and
follows every change: our writes, a rolled-back savepoint's (undone), another
connection's commits. Real SQLite, real admissions."""
from handlers.membership.members import ACTIVE_TIERS
from hive_sides import Side, form_hive
from hivemap_fleet import admit
from storage import changes
from storage import hive as hive_store
from storage.db import Database


def test_the_cached_view_follows_every_change(tmp_path, clock):
    a, b = Side("a", tmp_path, clock), Side("b", tmp_path, clock)
    form_hive(a, b)
    conn = a.db.conn()
    assert hive_store.sender_view(conn, ACTIVE_TIERS)[2] == {a.node_id, b.node_id}
    m, = admit(a, (a,), 1)
    assert hive_store.sender_view(conn, ACTIVE_TIERS)[2] == {a.node_id, b.node_id, m.node_id}
    with a.db.transaction():
        try:
            with a.db.transaction() as c:             # a savepoint that fails
                hive_store.add_ban(c, peer_id=m.node_id, reason="x", now=0.0)
                assert hive_store.sender_view(conn, ACTIVE_TIERS)[1] == {m.node_id}
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        assert not hive_store.sender_view(conn, ACTIVE_TIERS)[1]
    other = Database(a.db_path)                       # another connection commits
    with other.transaction() as c:
        hive_store.add_ban(c, peer_id=m.node_id, reason="x", now=0.0)
    other.close()
    assert hive_store.sender_view(conn, ACTIVE_TIERS)[1:] == ({m.node_id}, {a.node_id, b.node_id})
    assert hive_store.is_banned(conn, m.node_id) and not hive_store.is_banned(conn, b.node_id)
    a.close()
    b.close()


def test_a_migration_resets_the_counters(tmp_path, clock):
    """A migration may rebuild a table (its triggers go with it): the counters are set up
    again, so a write after it still moves them."""
    a = Side("a", tmp_path, clock)
    conn = a.db.conn()
    before = changes.version(conn, "membership")
    assert before is not None
    changes.reset(conn)                      # what migrate() does after migrating
    form_hive(a)
    assert changes.version(conn, "membership")[0] != before[0]      # set up again
    assert hive_store.sender_view(conn, ACTIVE_TIERS)[2] == {a.node_id}
    a.close()
