"""cl-hive (the repo's plugin.py) running in a fleet: start, connect, status, restart, stop.

Each runs on the stand-in and, when `lightningd` is on PATH, on real lightningd."""
import pytest

from tests.standin.backend import PROBE_PLUGIN

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


def test_plugins_see_lightningds_peer_storage_message_from_each_new_peer(fleet):
    # lightningd's chanbackup sends each new peer a `peer_storage` (type 7); it reaches the
    # peer's plugins through the custommsg hook, so a plugin must ignore types it does not know.
    a, b = fleet.nodes(2, plugins=[PROBE_PLUGIN])
    fleet.connect(a, b)

    def storage_from(node, peer):
        return [m for m in node.rpc.call("probe-received")["custommsg_hook"]
                if m["peer_id"] == peer.id and m["payload"].startswith("0007")]
    fleet.wait_for(lambda: storage_from(a, b) and storage_from(b, a), timeout=10,
                   what="a peer_storage message each way")
    blob = bytes.fromhex(storage_from(b, a)[0]["payload"])
    assert int.from_bytes(blob[2:4], "big") == len(blob) - 4   # u16 length, then the blob


@pytest.mark.standin_only
def test_graceful_stop_ends_plugin_on_the_shutdown_notification(fleet):
    # Stand-in only: it watches each plugin's exit after `shutdown`; lightningd reports
    # no such thing (test_lightningd_stop_is_clean is the real daemon's side). The plugin
    # must exit by itself on `shutdown`, not wait out lightningd's shutdown timeout (the
    # stand-in then logs "did not exit within") or linger until it is killed (a fault).
    # How fast it exits is a figure, not asserted here: a busy machine stretches it.
    a = fleet.nodes(1)[0]
    hive_status(a)
    times = a.stop()
    assert "plugin.py" in times, times
    assert not a.standin.hosts[0].alive
    assert not [line for line in a.standin.logs if "did not exit within" in line.message]
    assert a.standin.faults == []


@pytest.mark.standin_only
def test_a_tick_while_lightningd_refuses_rpc_before_shutdown_is_not_a_fault(fleet):
    # Stand-in only: holding the refuse-RPC gap open (rpc_gap) is a stand-in knob; on
    # lightningd it lasts milliseconds and a tick rarely falls in it.
    # lightningd refuses JSON-RPC before it sends `shutdown` (it stops connectd and the
    # channel daemons in between); a tick calling lightningd then must not log an error
    # (lightningd records it as BROKEN). The gap is held open long enough for ticks to fall in.
    a = fleet.nodes(1, options={"hive-tick-seconds": 1})[0]
    a.rpc.call("hive-genesis", {})             # a member: its tick reads channels and funds
    a.stop(rpc_gap=2.5)
    assert a.standin.faults == []
    refused = [line for line in a.standin.logs if "Connection refused" in line.message]
    assert refused and all(line.level != "broken" for line in refused)


@pytest.mark.real_cln
def test_lightningd_stop_is_clean(fleet):
    # Real CLN only: pyln-testing stops lightningd with its own `stop` command and fails
    # teardown on BROKEN log lines or a crash log, which the stand-in cannot show.
    a = fleet.nodes(1, options={"hive-tick-seconds": 1})[0]
    a.rpc.call("hive-genesis", {})             # so its ticks call lightningd, up to the end
    hive_status(a)
    a.stop()
