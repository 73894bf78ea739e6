"""The lightning-rpc socket: framing, lightningd's error shapes, passthrough to plugins."""
import json
import socket
import threading

import pytest
from pyln.client import RpcError

from tests.standin.backend import COMPANIONS, wait_until


@pytest.fixture
def one(standin_fleet):
    return standin_fleet.nodes(1)[0]


def raw_exchange(node, payload: bytes, replies=1, check_close=False):
    """Send bytes on a fresh connection; read `replies` objects terminated by a blank line.
    With check_close, also report whether the server then closed the connection."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(node.rpc_path)
        s.sendall(payload)
        buf, out = b"", []
        while len(out) < replies:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            while b"\n\n" in buf and len(out) < replies:
                obj, buf = buf.split(b"\n\n", 1)
                out.append(json.loads(obj))
        closed = None
        if check_close:
            s.settimeout(2)
            closed = not buf and s.recv(1) == b""
        return out, closed


def test_unknown_command(one):
    with pytest.raises(RpcError) as e:
        one.rpc.call("nosuchcommand")
    assert e.value.error == {"code": -32601, "message": "Unknown command 'nosuchcommand'"}


def test_malformed_json_gets_null_id_and_hangup(one):
    (reply,), closed = raw_exchange(one, b'{"jsonrpc": "2.0", "id": 1, "method": ]', check_close=True)
    assert reply["id"] is None and reply["error"]["code"] == -32600
    assert reply["error"]["message"].startswith("Invalid token in json input")
    assert closed is True


@pytest.mark.parametrize("req,rid,message", [
    ([1, 2], None, "Expected {} for json command"),
    ({"jsonrpc": "2.0", "method": "getinfo", "params": {}}, None, "No id"),
    ({"jsonrpc": "2.0", "id": {"a": 1}, "method": "getinfo", "params": {}}, None, "Expected string/primitive for id"),
    ({"id": 5, "method": "getinfo", "params": {}}, None, 'jsonrpc: "2.0" must be specified in the request'),
    ({"jsonrpc": "2.0", "id": 5, "method": "getinfo"}, 5, "No params"),
    ({"jsonrpc": "2.0", "id": "x", "params": {}}, "x", "No method"),
])
def test_malformed_requests(one, req, rid, message):
    (reply,), _ = raw_exchange(one, json.dumps(req).encode())
    assert reply == {"jsonrpc": "2.0", "id": rid, "error": {"code": -32600, "message": message}}


def test_stream_without_delimiters_and_id_echo(one):
    reqs = [{"jsonrpc": "2.0", "id": 7, "method": "getinfo", "params": {}},
            {"jsonrpc": "2.0", "id": "abc", "method": "getinfo", "params": []},
            {"jsonrpc": "2.0", "id": 1.5, "method": "nosuch", "params": {}}]
    data = "".join(json.dumps(r) for r in reqs).encode()
    # Split mid-object to check the server buffers partial input.
    replies, _ = raw_exchange(one, data, replies=3)
    assert [r["id"] for r in replies] == [7, "abc", 1.5]
    assert replies[0]["result"]["id"] == one.id and replies[1]["result"]["id"] == one.id
    assert replies[2]["error"]["code"] == -32601


@pytest.mark.parametrize("params,message", [
    ({}, "missing required parameter: message"),
    ({"message": "x", "bogus": 1}, "unknown parameter: bogus, this may be caused by a failure to autodetect "
                                   "key=value-style parameters. Use the '-k' flag to force key=value style."),
    (["a", "b"], "too many parameters: got 2, expected 1"),
    ({"message": 5}, "message: should be a string: invalid token '5'"),
])
def test_param_errors(one, params, message):
    with pytest.raises(RpcError) as e:
        one.rpc.call("signmessage", params)
    assert e.value.error == {"code": -32602, "message": message}


def test_passthrough_rewrites_and_restores_ids(one):
    out = one.rpc.call("probe-echo", {"x": 1})
    assert out["params"] == {"x": 1}
    cid, _, lid = out["id"].partition("/")
    assert cid.startswith("cli:probe-echo#") and lid.startswith("cln:probe-echo#")
    # A numeric id is echoed verbatim and used as the prefix as written.
    (reply,), _ = raw_exchange(one, json.dumps({"jsonrpc": "2.0", "id": 42, "method": "probe-echo",
                                                "params": ["positional"]}).encode())
    assert reply["id"] == 42 and reply["result"]["id"].startswith("42/cln:probe-echo#")
    (reply,), _ = raw_exchange(one, json.dumps({"jsonrpc": "2.0", "id": 'we"ird', "method": "probe-echo",
                                                "params": {}}).encode())
    assert reply["id"] == 'we"ird' and reply["result"]["id"].startswith("weird-id/cln:probe-echo#")


def test_plugin_calls_rpc_from_inside_a_command(one):
    assert one.rpc.call("probe-call", {"method": "getinfo"})["id"] == one.id
    ids = [rid for rid, method in one.standin.rpc_log if method == "getinfo"]
    # pyln prefixes the inner call with the id lightningd gave the outer one.
    assert any(isinstance(i, str) and i.startswith("cli:probe-call#") and "/cln:probe-call#" in i
               and i.endswith("/probe_plugin:getinfo#1") for i in ids), ids


def test_plugin_error_object_reaches_client_as_is(one):
    with pytest.raises(RpcError) as e:
        one.rpc.call("probe-set", {"what": "custommsg"})
    err = e.value.error
    assert err["code"] == -32600 and err["message"].startswith("Error while processing probe-set:")
    assert "traceback" in err  # pyln's extra member survives the passthrough


def test_message_notifications_reach_a_client_that_asked(one):
    seen = []
    with one.rpc.notify(lambda message, progress, request, **kw: seen.append(message)):
        assert one.rpc.call("probe-progress") == {"done": True}
    assert seen == ["working"]


def test_plugin_dying_mid_call_gives_minus_4(one):
    one.standin.expect_fault(r"plugin-died.*probe_plugin")
    with pytest.raises(RpcError) as e:
        one.rpc.call("probe-exit", {"code": 3})
    assert e.value.error == {"code": -4, "message": "Plugin terminated before replying to RPC call."}
    assert "rc=3" in one.standin.wait_for_fault("plugin-died").message
    with pytest.raises(RpcError, match="Unknown command 'probe-echo'"):
        one.rpc.call("probe-echo")


def test_rpc_served_while_a_call_hangs(one):
    got = {}
    t = threading.Thread(target=lambda: got.setdefault("r", _call_catching(one, "probe-hang")), daemon=True)
    t.start()
    host = one.standin.find_host("probe_plugin.py")
    wait_until(lambda: "probe-hang" in host.requests_sent, 10, 0.01,
               "the hanging call to reach the plugin")
    assert one.rpc.getinfo()["id"] == one.id
    assert t.is_alive()  # still waiting on the plugin
    one.kill_plugin("probe_plugin.py")
    t.join(5)
    assert got["r"]["code"] == -4


def _call_catching(node, method):
    try:
        return node.rpc.call(method)
    except RpcError as e:
        return e.error


def test_setconfig_dynamic_option(one):
    res = one.rpc.setconfig("probe-dyn", "changed")
    assert res["config"]["config"] == "probe-dyn" and res["config"]["value_str"] == "changed"
    assert one.rpc.call("probe-echo")["dyn"] == "changed"
    with pytest.raises(RpcError) as e:
        one.rpc.setconfig("probe-dyn", "bad")
    assert "probe-dyn refuses 'bad'" in e.value.error["message"]
    assert one.rpc.call("probe-echo")["dyn"] == "changed"
    assert one.rpc.listconfigs("probe-dyn")["configs"]["probe-dyn"]["value_str"] == "changed"
    with pytest.raises(RpcError) as e:
        one.rpc.setconfig("probe-int", "3")
    assert e.value.error["code"] == -32602 and "not a dynamic option" in e.value.error["message"]


def test_plugin_start_list_stop(one):
    path = str(COMPANIONS["clboss"])
    res = one.rpc.plugin_start(path)
    assert {"name": path, "active": True, "dynamic": True} in res["plugins"]
    assert one.rpc.call("clboss-status")["unmanaged"] == {}
    with pytest.raises(RpcError) as e:
        one.rpc.plugin_start(path)
    assert e.value.error["code"] == -32602 and "already registered" in e.value.error["message"]
    assert one.rpc.plugin_stop("clboss") == {"command": "stop", "result": "Successfully stopped clboss."}
    with pytest.raises(RpcError, match="Unknown command 'clboss-status'"):
        one.rpc.call("clboss-status")
    with pytest.raises(RpcError, match="Could not find plugin"):
        one.rpc.plugin_stop("clboss")
    assert [p["name"] for p in one.rpc.plugin_list()["plugins"]] == [one.standin.hosts[0].path]


def test_datastore_round_trip_and_errors(one):
    assert one.rpc.datastore(key=["hive", "x"], string="v1") == {"key": ["hive", "x"], "generation": 0,
                                                                 "hex": "7631", "string": "v1"}
    with pytest.raises(RpcError) as e:
        one.rpc.datastore(key=["hive", "x"], string="v2")
    assert e.value.error["code"] == 1202
    one.rpc.datastore(key=["hive", "x"], string="+", mode="must-append", generation=0)
    assert one.rpc.listdatastore("hive")["datastore"][0]["string"] == "v1+"
    with pytest.raises(RpcError) as e:
        one.rpc.deldatastore(["hive", "x"], generation=0)
    assert e.value.error["code"] == 1201
    one.restart()  # lightningd keeps its datastore in its database
    assert one.rpc.deldatastore(["hive", "x"])["generation"] == 1
    assert one.rpc.listdatastore()["datastore"] == []
