"""signmessage/checkmessage through the stand-in's real socket, against CLN's known vectors."""
import json
from pathlib import Path

import pytest
from pyln.client import RpcError

from tests.standin.backend import REPO_ROOT
from tests.standin.keys import zbase32_decode, zbase32_encode

# shared/ sits beside the repo (on CI and in the workspace).
_VECTOR_FILES = [REPO_ROOT.parent / "shared" / "reference" / "signmessage-vectors.json",
                 Path("/work/shared/reference/signmessage-vectors.json")]
VECTORS = next((json.loads(p.read_text()) for p in _VECTOR_FILES if p.exists()), None)
# Kept inline too so the suite does not depend on shared/ being beside the repo.
CHECK_VECTORS = [
    ("message for you", "rnu3qotbr47u7uzgodtq51fraszhp47xfen4yxbzhsisrekqwzshysu7sq4f74g5jobnh35fsh1a3ysoa7who6cqbti47qkxp6w1qwan",
     "033845802d25b4e074ccfd7cd8b339a41dc75bf9978a034800444b51d42b07799a"),
    ("this is a test!", "d63t8j9xmusnx6f6j3tauwoewi1g3a94t9xrastmou8i5rzn3gm9nuahkx6zfnm9ry145w4j88ctteim4mtxc7qreyity55zq63sj6n5",
     "033845802d25b4e074ccfd7cd8b339a41dc75bf9978a034800444b51d42b07799a"),
]


@pytest.fixture
def one(standin_fleet):
    return standin_fleet.nodes(1)[0]


def test_vectors_file_matches_inline_copy():
    if VECTORS is None:
        pytest.skip("shared/reference not beside the repo")
    assert [(v["message"], v["zbase"], v["pubkey"]) for v in VECTORS["checkmessage"]] == CHECK_VECTORS
    for s in VECTORS["signmessage"]:
        # signature hex + recid re-encode to CLN's zbase (the stand-in's encoder is what signmessage uses)
        assert zbase32_encode(bytes([31 + int(s["recid"], 16)]) + bytes.fromhex(s["signature"])) == s["zbase"]


@pytest.mark.parametrize("message,zbase,pubkey", CHECK_VECTORS)
def test_cln_vectors_verify_with_pubkey(one, message, zbase, pubkey):
    assert one.rpc.checkmessage(message, zbase, pubkey) == {"pubkey": pubkey, "verified": True}
    other = "02" + pubkey[2:]
    assert one.rpc.checkmessage(message, zbase, other) == {"pubkey": pubkey, "verified": False}
    # A modified message recovers some other key.
    assert one.rpc.checkmessage(message + "!", zbase, pubkey)["verified"] is False


def test_cln_vector_without_pubkey_needs_graph(one):
    message, zbase, pubkey = CHECK_VECTORS[0]
    with pytest.raises(RpcError) as e:
        one.rpc.checkmessage(message, zbase)
    assert e.value.error == {"code": 1301, "message": "pubkey not found in the graph", "data": {"claimed_key": pubkey}}
    one.standin.data.add_graph_node(pubkey, alias="vector")
    assert one.rpc.checkmessage(message, zbase) == {"pubkey": pubkey, "verified": True}


def test_signmessage_shape_and_round_trip_between_nodes(standin_fleet):
    a, b = standin_fleet.nodes(2)
    for message, _, _ in CHECK_VECTORS:
        sig = a.rpc.signmessage(message)
        assert len(sig["signature"]) == 128 and len(sig["recid"]) == 2 and len(sig["zbase"]) == 104
        raw = zbase32_decode(sig["zbase"])
        assert raw[0] - 31 == int(sig["recid"], 16) and raw[1:].hex() == sig["signature"]
        assert b.rpc.checkmessage(message, sig["zbase"], a.id) == {"pubkey": a.id, "verified": True}
        assert b.rpc.checkmessage(message, sig["zbase"], b.id)["verified"] is False
        # RFC6979: signing again gives the same signature.
        assert a.rpc.signmessage(message) == sig
    sig = a.rpc.signmessage("hello b")
    with pytest.raises(RpcError, match="pubkey not found in the graph"):
        b.rpc.checkmessage("hello b", sig["zbase"])
    b.standin.data.add_graph_node(a.id)
    assert b.rpc.checkmessage("hello b", sig["zbase"]) == {"pubkey": a.id, "verified": True}


@pytest.mark.parametrize("zbase,msg", [("0" * 104, "zbase is not valid zbase32"),
                                       ("y" * 50, "zbase is too short"),
                                       ("y" * 110, "zbase is too long"),
                                       ("y" * 104, "cannot parse zbase signature")])
def test_checkmessage_bad_zbase(one, zbase, msg):
    with pytest.raises(RpcError) as e:
        one.rpc.checkmessage("x", zbase)
    assert e.value.error == {"code": -32602, "message": msg}


def test_signmessage_too_long(one):
    with pytest.raises(RpcError) as e:
        one.rpc.signmessage("x" * 65536)
    assert e.value.error == {"code": -32602, "message": "Message must be < 64k"}
    assert len(one.rpc.signmessage("x" * 65535)["zbase"]) == 104
