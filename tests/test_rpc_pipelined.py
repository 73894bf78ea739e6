"""Many calls on one connection (handlers/frame/pipelined.py), against the real socket of
each backend: every request gets its own answer, errors stay with their request, and a
burst larger than the socket's buffers neither blocks nor loses an answer."""
import os
import socket
import tempfile

import pytest
from pyln.client import RpcError

from handlers.frame.effects import RPC_TIMEOUT, ThreadLocalRpc


def test_a_burst_of_checks_on_one_connection_gets_each_its_own_answer(fleet):
    node, = fleet.nodes(1)
    rpc = ThreadLocalRpc(node.rpc_path, timeout=lambda method: 30)
    # ~2 KiB each, as a GOSSIP's signed string: 300 of them overflow the socket buffers.
    messages = [f"cl-hive/1|burst|{i}|" + "x" * 2000 for i in range(300)]
    signed = [rpc.call("signmessage", {"message": m})["zbase"] for m in messages[:3]]
    asked = [{"message": m, "zbase": signed[i % 3], "pubkey": node.id}
             for i, m in enumerate(messages)]
    asked[7] = {**asked[7], "zbase": "xx"}              # malformed: refused with -32602
    answers = rpc.call_many("checkmessage", asked)
    assert len(answers) == 300
    assert [i for i, a in enumerate(answers) if isinstance(a, dict) and a["verified"]] \
        == [0, 1, 2]                                     # each its own message's answer
    assert isinstance(answers[7], RpcError) and answers[7].error["code"] == -32602
    assert all(isinstance(a, dict) and a["verified"] is False
               for i, a in enumerate(answers) if i not in (0, 1, 2, 7))


def test_calls_left_unanswered_fail_as_timeouts(silent_socket):
    rpc = ThreadLocalRpc(silent_socket, timeout=lambda method: 0.2)
    answers = rpc.call_many("checkmessage", [{"message": "m" * 100_000, "zbase": "z",
                                              "pubkey": "02" + "11" * 32}] * 3)
    assert [a.error["code"] for a in answers] == [RPC_TIMEOUT] * 3
    assert "within 0.2 seconds" in answers[0].error["message"]


@pytest.fixture
def silent_socket():
    """A Unix socket that takes connections and never reads from them or answers."""
    d = tempfile.mkdtemp(prefix="hive-rpc-", dir="/tmp")
    path = os.path.join(d, "lightning-rpc")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    yield path
    server.close()
    os.unlink(path)
    os.rmdir(d)
