"""The CLBoss gateway: read the set, merge, write it whole; remove only the tags cl-hive
added (remembered in SQLite); never a command CLBoss does not have."""
import pytest

from bridge_sides import BridgeSide
from handlers.bridge import clboss
from storage import bridge as store

PEER = "02" + "77" * 32


@pytest.fixture
def side(tmp_path, clock):
    s = BridgeSide("a", tmp_path, clock)
    s.bridge.start(s.ctx)
    s.settle()
    yield s
    s.close()


def sets(side):
    return side.lightning.call("clboss-status")["unmanaged"]


def methods(side):
    return {m for m, _ in side.lightning.companion_calls if m.startswith("clboss")}


def test_ignore_and_release_keep_cl_revenue_ops_tags(side):
    side.lightning.models["clboss"].unmanage(PEER, "lnfee,balance")     # cl-revenue-ops' tags
    results = []
    clboss.ignore(side.ctx, PEER, results.append)
    side.settle()
    assert results == [None] and sets(side) == {PEER: "balance, lnfee, open"}
    assert store.our_tags(side.db.conn(), PEER) == {"open"}
    clboss.release(side.ctx, PEER, results.append)
    side.settle()
    assert results == [None, None] and sets(side) == {PEER: "balance, lnfee"}
    assert store.our_tags(side.db.conn(), PEER) == set()
    assert methods(side) == {"clboss-status", "clboss-unmanage"}


def test_a_tag_that_was_already_there_is_not_ours(side):
    side.lightning.models["clboss"].unmanage(PEER, "open")              # the operator's
    clboss.ignore(side.ctx, PEER)
    side.settle()
    assert store.our_tags(side.db.conn(), PEER) == set()
    clboss.release(side.ctx, PEER)
    side.settle()
    assert sets(side) == {PEER: "open"}


def test_release_after_a_restart_remembers_our_tags(side):
    side.lightning.models["clboss"].unmanage(PEER, "balance")
    clboss.ignore(side.ctx, PEER)
    side.settle()
    # A new process: new bridge, new pool, same database.
    side.new_bridge()
    side.bridge.start(side.ctx)
    side.settle()
    clboss.release(side.ctx, PEER)
    side.settle()
    assert sets(side) == {PEER: "balance"}


def test_the_last_tag_of_ours_hands_the_node_back(side):
    clboss.ignore(side.ctx, PEER)
    side.settle()
    assert sets(side) == {PEER: "open"}
    clboss.release(side.ctx, PEER)
    side.settle()
    assert sets(side) == {}
    assert ("clboss-unmanage", {"nodeid": PEER, "tags": ""}) in side.lightning.companion_calls


def test_changes_do_not_interleave(side):
    # Two adds issued back to back: each reads after the other's write.
    clboss.add_tag(side.ctx, PEER, "open")
    clboss.add_tag(side.ctx, PEER, "lnfee")
    side.settle()
    assert sets(side) == {PEER: "lnfee, open"}


def test_without_clboss_nothing_is_called(tmp_path, clock):
    s = BridgeSide("b", tmp_path, clock, clboss=False)
    s.bridge.start(s.ctx)
    s.settle()
    results = []
    clboss.ignore(s.ctx, PEER, results.append)
    s.settle()
    assert "not detected" in results[0] and methods(s) == set()
    s.close()
