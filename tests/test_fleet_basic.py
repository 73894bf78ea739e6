"""cl-hive (the repo's plugin.py) running in a fleet: start, connect, status, restart, stop.

Runs on real CLN when its binaries are on PATH, otherwise on the stand-in."""
import pytest

STATUS_KEYS = {"version", "governance_mode", "db_path", "machines"}


def hive_status(node):
    status = node.rpc.call("hive-status")
    assert isinstance(status, dict) and STATUS_KEYS <= set(status), status
    return status


def test_three_nodes_start_connect_and_answer(fleet):
    a, b, c = fleet.nodes(3)
    fleet.connect(a, b)
    fleet.connect(b, c)
    assert len({a.id, b.id, c.id}) == 3
    fleet.wait_for(lambda: len(b.rpc.listpeers()["peers"]) == 2, what="b to see both peers")
    for node in (a, b, c):
        hive_status(node)


def test_restart_answers_again(fleet):
    a = fleet.nodes(1)[0]
    before = hive_status(a)
    a.restart()
    after = hive_status(a)
    assert after["db_path"] == before["db_path"]


def test_with_companions(fleet):
    a = fleet.nodes(1, companions=["revenue_ops", "clboss"])[0]
    hive_status(a)
    assert a.rpc.call("revenue-status")["version"] == "2.1.0"


@pytest.mark.standin_only
def test_graceful_stop_ends_plugin_within_a_second(fleet):
    a = fleet.nodes(1)[0]
    hive_status(a)
    times = a.stop()
    assert times["plugin.py"] < 1.0, times
    assert not a.standin.hosts[0].alive


@pytest.mark.real_cln
def test_lightningd_stop_is_clean(fleet):
    # Real CLN only: pyln-testing stops lightningd with its own `stop` command and fails
    # teardown on BROKEN log lines or a crash log, which the stand-in cannot show.
    a = fleet.nodes(1)[0]
    hive_status(a)
    a.stop()
