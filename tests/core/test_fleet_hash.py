"""Our fleet hash is kept between sync intervals and follows every change: our own
writes, another connection's, and a transaction's, which its rollback undoes."""
from handlers.hivemap import gossip
from handlers.hivemap.rules import fleet_hash
from storage import hivemap
from storage.db import Database


class _Ctx:
    def __init__(self, db):
        self.db, self.timers = db, {}


def _put(conn, n, version):
    hivemap.put_if_newer(conn, {"peer_id": f"02{n:064x}", "version": version,
                                "timestamp": 1_700_000_000}, "sig", 0.0)


def _truth(db):
    return fleet_hash(e["state"] for e in hivemap.all_entries(db.conn()))


def test_the_kept_hash_follows_every_change(db, config):
    ctx = _Ctx(db)
    assert gossip.our_hash(ctx) == (_truth(db), 0)
    with db.transaction() as conn:
        _put(conn, 1, 1)
    assert gossip.our_hash(ctx) == (_truth(db), 1)
    other = Database(config.db_path)                 # another connection writes
    with other.transaction() as conn:
        _put(conn, 1, 2)
    other.close()
    assert gossip.our_hash(ctx) == (_truth(db), 1)
    try:
        with db.transaction() as conn:
            _put(conn, 2, 1)
            inside = gossip.our_hash(ctx)
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    assert inside[1] == 2 and gossip.our_hash(ctx) == (_truth(db), 1)
