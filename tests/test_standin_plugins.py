"""Plugin lifecycle on the stand-in: manifest checks, init options, faults, restart, stop."""
import os
import signal

import pytest
from pyln.client import RpcError

from tests.standin.backend import PROBE_PLUGIN, StandinFleet
from tests.standin.node import NodeFault, StartupError
from tests.standin.raw_plugin import write_raw_plugin


def probe_init(node):
    return node.rpc.call("probe-received")["init"]


def test_init_options_and_configuration(standin_fleet):
    a, b = standin_fleet.nodes(2, options=[{}, {"probe-int": "42", "probe-bool": "true", "probe-flag": True,
                                                "probe-name": 5}])
    init = probe_init(a)
    # Defaults typed as declared; the unset option without default and the unset flag are omitted.
    assert init["options"] == {"probe-name": "probe", "probe-int": 7, "probe-bool": False,
                               "probe-shutdown-delay": "0", "probe-dyn": "initial"}
    assert probe_init(b)["options"] == {"probe-name": "5", "probe-int": 42, "probe-bool": True, "probe-flag": True,
                                        "probe-shutdown-delay": "0", "probe-dyn": "initial"}
    conf = init["configuration"]
    assert conf["lightning-dir"] == a.standin.network_dir and conf["rpc-file"] == "lightning-rpc"
    assert conf["startup"] is True and conf["network"] == "regtest" and set(conf["feature_set"]) >= {"init", "node"}
    assert a.rpc.call("probe-file", {"name": "x", "content": "y"})["cwd"] == a.standin.network_dir


@pytest.mark.parametrize("options,match", [({"probe-int": "abc"}, "--probe-int: 'abc' is not a number"),
                                           ({"probe-bool": "maybe"}, "--probe-bool: Invalid argument 'maybe'"),
                                           ({"no-such-option": 1}, "unrecognized option '--no-such-option'")])
def test_bad_option_values_refuse_startup(standin_fleet, options, match):
    with pytest.raises(StartupError, match=match):
        standin_fleet.nodes(1, options=options)
    assert not any(h.alive for h in standin_fleet.all_nodes[0].hosts)


def test_disable_at_init_is_reported_not_a_fault(standin_fleet):
    a = standin_fleet.nodes(1, options={"probe-disable": "not today"})[0]
    host = a.standin.hosts[0]
    assert (host.state, host.reason) == ("disabled", "not today")
    a.standin.wait_for_log("disabled itself: not today")
    with pytest.raises(RpcError, match="Unknown command 'probe-echo'"):
        a.rpc.call("probe-echo")
    assert a.standin.faults == []


BAD_MANIFESTS = [
    ({"rpcmethods": None}, "rpcmethods\" missing"),
    ({"options": None}, "options\" missing"),
    ({"rpcmethods": [{"name": "raw-x", "description": "no usage"}]}, "\"usage\" not provided"),
    ({"options": [{"name": "raw-o", "type": "float", "description": ""}]}, "options are supported"),
    ({"options": [{"name": "Raw-O", "type": "string", "description": ""}]}, "must be lowercase"),
    ({"options": [{"name": "raw-f", "type": "flag", "description": "", "default": True}]}, "flag type can only default"),
    ({"options": [{"name": "probe-int", "type": "int", "description": ""}]}, "Duplicate option name probe-int"),
    ({"rpcmethods": [{"name": "probe-echo", "usage": ""}]}, "already registered"),
    ({"rpcmethods": [{"name": "getinfo", "usage": ""}]}, "already registered"),
    ({"featurebits": {"node": "0200"}, "dynamic": True}, "featurebits only allows for non-dynamic"),
    ({"custommessages": [70000]}, "custommessages must be an array of u16"),
    ({"hooks": [{"name": "no_such_hook"}]}, "could not register hook 'no_such_hook'"),
    ({"hooks": [{"name": "peer_connected", "filters": [1]}]}, "does not allow filters"),
    ({"nonnumericids": False}, "nonnumericids"),
    ({"notifications": [{"method": "connect"}]}, "native notification topic"),
]


@pytest.mark.parametrize("patch,match", BAD_MANIFESTS)
def test_manifest_validation_kills_bad_plugin(standin_fleet, tmp_path, patch, match):
    bad = write_raw_plugin(str(tmp_path), "bad.py", **patch)
    a = standin_fleet.nodes(1, plugins=[PROBE_PLUGIN, bad])[0]
    fault = a.standin.wait_for_fault("plugin-killed")
    assert fault.plugin == "bad.py" and match in fault.message
    assert a.standin.find_host("bad.py", states=("killed",)) is not None
    assert a.rpc.call("probe-echo")["params"] == {}  # the good plugin runs on


def test_good_raw_plugin_and_manifest_disable(standin_fleet, tmp_path):
    ok = write_raw_plugin(str(tmp_path), "ok.py")
    off = write_raw_plugin(str(tmp_path), "off.py", manifest={"disable": "no thanks"})
    a = standin_fleet.nodes(1, plugins=[ok, off])[0]
    assert a.rpc.call("raw-hello") == {}
    host = a.standin.find_host("off.py", states=("disabled",))
    assert host.reason == "no thanks"
    assert a.standin.faults == []


def test_a_plugin_file_lightningd_cannot_execute_is_refused(standin_fleet, tmp_path):
    # lightningd execs the file (its #! line picks the interpreter), so it needs the x bit.
    path = write_raw_plugin(str(tmp_path), "noexec.py")
    os.chmod(path, 0o644)
    with pytest.raises(StartupError, match="error starting plugin '%s': opening pipe: Permission denied" % path):
        standin_fleet.nodes(1, plugins=[PROBE_PLUGIN, path])
    assert not any(h.alive for h in standin_fleet.all_nodes[0].hosts)
    a = standin_fleet.nodes(1)[0]
    with pytest.raises(RpcError, match="Permission denied"):
        a.rpc.plugin_start(path)
    assert a.standin.faults == []


def test_runtime_plugin_start_rejects_bad_and_static_plugins(standin_fleet, tmp_path):
    a = standin_fleet.nodes(1)[0]
    static = write_raw_plugin(str(tmp_path), "static.py", dynamic=False)
    with pytest.raises(RpcError) as e:
        a.rpc.plugin_start(static)
    assert e.value.error == {"code": -3, "message": "%s: Not a dynamic plugin" % static}
    bad = write_raw_plugin(str(tmp_path), "bad.py", rpcmethods=[{"name": "x"}])
    with pytest.raises(RpcError, match="usage"):
        a.rpc.plugin_start(bad)
    assert a.standin.faults == []  # at runtime the caller gets the error, nothing is fatal


@pytest.mark.parametrize("text,match", [('{"id": "zz", "result": {}}\n\n', "does not contain \"jsonrpc\""),
                                        ("hello, I am not JSON\n", "invalid JSON output"),
                                        ("[1, 2]\n\n", "does not contain \"jsonrpc\"")])
def test_protocol_violations_kill_the_plugin(standin_fleet, text, match):
    a = standin_fleet.nodes(1)[0]
    a.standin.expect_fault("plugin-killed")
    with pytest.raises(RpcError) as e:
        a.rpc.call("probe-write-raw", {"text": text})
    assert e.value.error["code"] == -4
    assert match in a.standin.wait_for_fault("plugin-killed").message


def test_unknown_log_level_kills_and_error_level_is_a_fault(standin_fleet):
    a, b = standin_fleet.nodes(2)
    a.rpc.call("probe-log", {"message": "fine", "level": "UNUSUAL"})
    a.rpc.call("probe-log", {"message": "also fine", "level": "warn"})
    assert a.standin.wait_for_log("plugin-probe_plugin.py: also fine").level == "unusual"
    b.rpc.call("probe-log", {"message": "oh no", "level": "error"})
    assert b.standin.wait_for_fault("broken-log").message == "oh no"
    a.standin.expect_fault("plugin-killed")
    with pytest.raises(RpcError) as e:  # killed on the log line, before the reply
        a.rpc.call("probe-log", {"message": "x", "level": "loud"})
    assert e.value.error["code"] == -4
    assert "Unknown log-level 'loud'" in a.standin.wait_for_fault("plugin-killed").message


def test_fault_surfaces_on_next_rpc_call_and_in_teardown(tmp_path):
    fleet = StandinFleet(plugin=PROBE_PLUGIN)
    try:
        a = fleet.nodes(1)[0]
        a.rpc.call("probe-log", {"message": "boom", "level": "broken"})
        a.standin.wait_for_log("boom", check_faults=False)
        with pytest.raises(NodeFault, match="broken-log"):
            a.rpc.getinfo()
        with pytest.raises(NodeFault):
            fleet.wait_for(lambda: True)
    finally:
        problems = fleet.teardown()
    assert any("unexpected fault [broken-log]" in p for p in problems)


def test_restart_keeps_lightning_dir(standin_fleet):
    a = standin_fleet.nodes(1)[0]
    first_pid = a.standin.hosts[0].pid
    a.rpc.call("probe-file", {"name": "state.txt", "content": "kept"})
    node_id = a.id
    a.restart()
    assert a.standin.hosts[0].pid != first_pid
    assert a.rpc.call("probe-file", {"name": "state.txt"})["content"] == "kept"
    assert a.rpc.getinfo()["id"] == node_id


def test_kill_on_purpose_is_not_a_fault_but_outside_kill_is(standin_fleet):
    a, b = standin_fleet.nodes(2)
    a.kill_plugin("probe_plugin.py")
    with pytest.raises(RpcError, match="Unknown command"):
        a.rpc.call("probe-echo")
    assert a.standin.faults == []
    os.kill(b.standin.hosts[0].pid, signal.SIGKILL)  # not via the node: an unexpected death
    fault = b.standin.wait_for_fault("plugin-died")
    assert fault.plugin == "probe_plugin.py" and "rc=-9" in fault.message


def test_graceful_stop_timing(standin_fleet):
    a, b = standin_fleet.nodes(2, options=[{}, {"probe-shutdown-delay": "0.4"}])
    quick = a.stop()["probe_plugin.py"]
    slow = b.stop()["probe_plugin.py"]
    assert quick < 1.0
    assert 0.4 <= slow < 1.4
    assert not a.standin.hosts[0].alive and not b.standin.hosts[0].alive
    a.standin.wait_for_log("probe shutting down")
    with pytest.raises(ConnectionRefusedError):  # RPC refused once lightningd shuts down
        a.rpc.getinfo()


def test_plugin_ignoring_shutdown_is_killed_after_timeout(standin_fleet, tmp_path):
    # A raw plugin that subscribes to shutdown but never exits, and ignores EOF on stdin.
    path = tmp_path / "stubborn.py"
    path.write_text(open(write_raw_plugin(str(tmp_path), "base.py", subscriptions=["shutdown"])).read().replace(
        'buf = b""', 'import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nbuf = b""') +
        "\nwhile True:\n    time.sleep(1)\n")
    path.chmod(0o755)
    a = standin_fleet.nodes(1, plugins=[str(path)])[0]
    a.standin.expect_fault("plugin-lingered")
    times = a.stop(timeout=0.3)
    assert 0.3 <= times["stubborn.py"] < 5
    assert a.standin.wait_for_fault("plugin-lingered").plugin == "stubborn.py"
