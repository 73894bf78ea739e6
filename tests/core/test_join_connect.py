"""hive-join reaches the admin with `connect` on the bridge's pool, never on the worker: a
connect that hangs holds up nothing, and ends the join with PEER_UNREACHABLE naming
`address` once the bridge's timeout passes; a connect that succeeds opens the session and
sends HELLO from the worker. The joiner is a real Hive (engine, worker, pool threads) on
the manual clock; the admin is a handler-level Side."""
from types import SimpleNamespace

import pytest
from pyln.client import RpcException

from bridge_sides import CompanionLightning
from handlers.frame import config as cfg
from handlers.frame import errors
from handlers.hive import Hive
from handlers.membership import members as membership
from hive_sides import Side

ADDRESS = "127.0.0.1:9735"
WAIT = 5.0


@pytest.fixture
def admin(tmp_path, clock):
    a = Side("admin", tmp_path, clock)
    membership.genesis(a.ctx, "fleet")
    yield a
    a.close()


@pytest.fixture
def joiner(tmp_path, clock, admin):
    lightning = CompanionLightning("joiner", clock=clock)
    lightning.unreachable.add(admin.node_id)
    hive = Hive(clock=clock)
    d = tmp_path / "joiner"
    d.mkdir()
    hive.start(cfg.from_init({"hive-bridge-timeout-seconds": 15}, str(d)), lightning)
    yield hive, lightning
    lightning.release_hung()
    hive.stop()


def ticket(admin):
    return membership.invite(admin.ctx, None, None, None)["ticket"]


def joiner_sessions(hive):
    status = hive.status().result(timeout=WAIT)
    return status["machines"].get("handshake_joiner", {})


def test_a_hanging_connect_holds_up_nothing_and_ends_the_join_as_unreachable(
        admin, joiner, clock):
    hive, lightning = joiner
    lightning.modes["connect"] = "hang"
    answer = hive.join(ticket(admin), ADDRESS, None)
    with lightning.cond:
        assert lightning.cond.wait_for(lambda: lightning.hanging == 1, WAIT)
    # The worker is free: a command and a tick run while connect hangs.
    assert hive.command(lambda: "ran").result(timeout=WAIT) == "ran"
    hive.command(hive.engine.tick).result(timeout=WAIT)
    assert not answer.done()
    # A second join meanwhile is refused as busy, not queued behind the first.
    with pytest.raises(RpcException) as busy:
        hive.join(ticket(admin), ADDRESS, None).result(timeout=WAIT)
    assert busy.value.code == errors.HANDSHAKE_BUSY
    clock.advance(15)
    hive.command(hive.engine.tick).result(timeout=WAIT)     # the pool's timeout is judged
    with pytest.raises(RpcException) as err:
        answer.result(timeout=WAIT)
    assert err.value.code == errors.PEER_UNREACHABLE
    assert err.value.message.startswith(f"address: cannot connect to admin {admin.node_id}")
    assert "timeout" in err.value.message
    # The late answer (lightningd ends the call) opens no session and sends nothing.
    lightning.release_hung()
    hive.command(lambda: None).result(timeout=WAIT)
    assert joiner_sessions(hive) == {} and lightning.sent == []


def test_a_failed_connect_answers_unreachable_naming_address(admin, joiner):
    hive, lightning = joiner
    lightning.modes["connect"] = "fail"
    with pytest.raises(RpcException) as err:
        hive.join(ticket(admin), ADDRESS, None).result(timeout=WAIT)
    assert err.value.code == errors.PEER_UNREACHABLE
    assert err.value.message.startswith(f"address: cannot connect to admin {admin.node_id}")
    assert "All addresses failed" in err.value.message
    assert joiner_sessions(hive) == {}
    # Nothing is left in progress: a join that can connect goes ahead.
    lightning.modes["connect"] = "ok"
    hive.join(ticket(admin), ADDRESS, 3600)
    with lightning.cond:
        assert lightning.cond.wait_for(lambda: lightning.sent, WAIT)


def test_a_join_that_connects_runs_the_handshake_to_joined(admin, joiner):
    hive, lightning = joiner
    answer = hive.join(ticket(admin), ADDRESS, None)
    seen = 0
    for _ in range(2):                      # HELLO, then ATTEST, each answered by the admin
        with lightning.cond:
            assert lightning.cond.wait_for(lambda: len(lightning.sent) > seen, WAIT)
            node, msg = lightning.sent[seen]
            seen += 1
        assert node == admin.node_id
        admin.receive(lightning.node_id, msg)
        for reply in admin.outgoing(SimpleNamespace(node_id=lightning.node_id)):
            hive.on_custommsg(admin.node_id, reply)
    result = answer.result(timeout=WAIT)
    assert result["state"] == "joined" and result["admin"] == admin.node_id
    assert lightning.connects == [f"{admin.node_id}@{ADDRESS}"]
