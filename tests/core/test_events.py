"""hive-events: the transition log newest first, each filter narrowing it, `limit` capping
it, integer timestamps, and -32602 naming each bad parameter."""
import pytest
from pyln.client import RpcException

from handlers import events
from handlers.frame.errors import INVALID_PARAMS
from storage import retention as retention_store
from tests.core.hive_sides import Side

T = 1_700_000_000
PEER = "02" + "11" * 32
OTHER = "03" + "22" * 32


@pytest.fixture
def side(tmp_path, clock):
    s = Side("a", tmp_path, clock)
    yield s
    s.close()


def _moves(side, clock):
    """Breaker b1 opens (peer PEER), breaker b2 is created, b1 probes: four transitions."""
    clock.advance(0.4)        # the manual clock starts at T = 1_700_000_000
    side.dispatcher.create("circuit_breaker", "b1", peer_id=PEER)
    clock.advance(1.3)
    side.dispatcher.fire("circuit_breaker", "b1", "failure", failures=9, threshold=3,
                         peer_id=PEER)
    clock.advance(0.5)
    side.dispatcher.create("circuit_breaker", "b2", peer_id=OTHER)
    clock.advance(997.8)
    side.dispatcher.fire("circuit_breaker", "b1", "cooldown_elapsed", peer_id=PEER)


def test_newest_first_with_integer_times_and_each_filter(side, clock):
    _moves(side, clock)
    out = events.events(side.ctx)
    assert [(e["id"], e["trigger"], e["from"], e["to"]) for e in out["events"]] == [
        ("b1", "cooldown_elapsed", "open", "half_open"), ("b2", "create", None, "closed"),
        ("b1", "failure", "closed", "open"), ("b1", "create", None, "closed")]
    assert [e["at"] for e in out["events"]] == [T + 1000, T + 2, T + 1, T]
    assert all(type(e["at"]) is int and e["machine"] == "circuit_breaker" for e in out["events"])
    seqs = [e["seq"] for e in out["events"]]
    assert seqs == sorted(seqs, reverse=True)
    assert (out["limit"], out["retention_days"], out["kept_since"]) == (50, 90, 0)

    def ids(**filters):
        return [(e["id"], e["trigger"]) for e in events.events(side.ctx, **filters)["events"]]
    assert ids(instance_id="b2") == [("b2", "create")]
    assert ids(peer_id=OTHER) == [("b2", "create")]
    assert ids(peer_id=PEER, since=T + 1) == [("b1", "cooldown_elapsed"), ("b1", "failure")]
    assert ids(since=T + 2) == [("b1", "cooldown_elapsed"), ("b2", "create")]
    assert ids(limit=2) == [("b1", "cooldown_elapsed"), ("b2", "create")]
    assert ids(machine="intent_lock") == []
    assert len(ids(machine="circuit_breaker", instance_id="b1")) == 3


def test_pruned_rows_are_gone_and_kept_since_says_from_when(side, clock):
    _moves(side, clock)
    with side.db.transaction() as conn:
        retention_store.prune(conn, before=T + 500.9, terminal={})
    out = events.events(side.ctx)
    assert [e["trigger"] for e in out["events"]] == ["cooldown_elapsed"]
    assert out["kept_since"] == T + 500


@pytest.mark.parametrize("params,name", [
    ({"machine": "nope"}, "machine"), ({"machine": 3}, "machine"),
    ({"instance_id": ""}, "id"), ({"instance_id": 5}, "id"), ({"instance_id": "x" * 201}, "id"),
    ({"peer_id": "02ab"}, "peer_id"), ({"peer_id": "04" + "11" * 32}, "peer_id"),
    ({"since": -1}, "since"), ({"since": "yesterday"}, "since"), ({"since": 1.5}, "since"),
    ({"since": True}, "since"), ({"limit": 0}, "limit"), ({"limit": 1001}, "limit"),
    ({"limit": "5"}, "limit"), ({"machine": "intent_lock", "limit": 0}, "limit"),
])
def test_a_bad_parameter_is_named(side, params, name):
    with pytest.raises(RpcException) as e:
        events.events(side.ctx, **params)
    assert e.value.code == INVALID_PARAMS and e.value.message.startswith(name + ": ")
