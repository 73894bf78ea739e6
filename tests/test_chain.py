"""Our regtest chain (tests/chain): byte formats, proof of work, UTXO set, mempool rules, the
faucet, the chain server's answers in the shapes lightningd parses, and the backend plugin
speaking the plugin protocol. No lightningd needed."""
import json
import os
import subprocess
import sys

import pytest

from tests.chain.bitcoin import (Block, Tx, TxIn, TxOut, address_script, hash_hex, meets_target, merkle_root,
                                 script_address)
from tests.chain.chain import (COINBASE_MATURITY, FAUCET_SCRIPT, FAUCET_WITNESS_SCRIPT, GENESIS_HASH, Chain,
                               TxRejected)
from tests.chain.pyln_bitcoind import BACKEND_PLUGIN
from tests.chain.server import BACKEND_METHODS, ChainServer

P2WPKH = "bcrt1qeyyk6sl5pr49ycpqyckvmttus5ttj25pd0zpvg"     # pyln-testing's example regtest address


@pytest.fixture(scope="module")
def chain():
    return Chain()


def call(chain, method, **params):
    return json.loads(json.dumps(BACKEND_METHODS[method](chain, **params)))  # as it crosses the wire


def spend(outpoint_txid_hex, vout, outputs, locktime=0, sequence=0xFFFFFFFF):
    return Tx(2, [TxIn(bytes.fromhex(outpoint_txid_hex)[::-1], vout, sequence=sequence,
                       witness=[FAUCET_WITNESS_SCRIPT])], outputs, locktime)


def test_genesis_is_regtests_and_blocks_link_with_valid_proof_of_work(chain):
    assert hash_hex(chain.blocks[0].hash) == GENESIS_HASH
    assert chain.height == COINBASE_MATURITY + 1
    for prev, block in zip(chain.blocks, chain.blocks[1:]):
        assert block.prev == prev.hash and meets_target(block)
        assert block.merkle == merkle_root([t.txid for t in block.txs])
        assert Block.parse(block.serialize()).hash == block.hash
    assert not meets_target(Block(bytes(32), bytes(32), 0, [], bits=0x1D00FFFF))  # mainnet's target is not met


def test_segwit_addresses_match_bip173_and_bip350():
    assert address_script("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "bc").hex() == \
        "0014751e76e8199196d454941c45d1b3a323f1433bd6"
    assert address_script("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0", "bc").hex() == \
        "512079be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
    assert script_address(address_script(P2WPKH)) == P2WPKH
    for bad in ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5", P2WPKH):  # bad checksum, wrong network
        with pytest.raises(ValueError):
            address_script(bad, "bc")


def test_faucet_pays_an_address_and_the_block_confirms_it():
    chain = Chain()
    txid = chain.fund(P2WPKH, 1_234_567)
    assert call(chain, "getutxout", txid=txid, vout=0) == {"amount": "1234567sat",
                                                          "script": address_script(P2WPKH).hex()}
    [blockhash] = chain.mine(1)
    got = call(chain, "getrawblockbyheight", height=chain.height)
    assert got["blockhash"] == blockhash
    block = Block.parse(bytes.fromhex(got["block"]))
    assert [hash_hex(t.txid) for t in block.txs[1:]] == [txid]
    coinbase = block.txs[0]
    assert coinbase.outputs[0].value == 50 * 10**8 + 1_000   # the subsidy (halves at 150) and the fee
    assert any(o.script.startswith(bytes.fromhex("6a24aa21a9ed")) for o in coinbase.outputs)


def test_mempool_refuses_double_spends_missing_inputs_immature_coinbases_and_new_money():
    chain = Chain()
    txid = chain.fund(P2WPKH, 100_000)
    change = 1                                           # the faucet's change output
    value = chain.utxo(txid, change).value
    first = spend(txid, change, [TxOut(value - 500, FAUCET_SCRIPT)])
    assert chain.send(first.serialize()) == hash_hex(first.txid)
    twin = spend(txid, change, [TxOut(value - 900, FAUCET_SCRIPT)])
    with pytest.raises(TxRejected, match="txn-mempool-conflict"):
        chain.send(twin.serialize())
    with pytest.raises(TxRejected, match="missingorspent"):
        chain.send(spend("11" * 32, 0, [TxOut(1, FAUCET_SCRIPT)]).serialize())
    with pytest.raises(TxRejected, match="belowout"):
        chain.send(spend(hash_hex(first.txid), 0, [TxOut(value, FAUCET_SCRIPT)]).serialize())
    young = hash_hex(chain.blocks[-1].txs[0].txid)       # the newest coinbase
    with pytest.raises(TxRejected, match="premature"):
        chain.send(spend(young, 0, [TxOut(1, FAUCET_SCRIPT)]).serialize())
    late = spend(hash_hex(first.txid), 0, [TxOut(1000, FAUCET_SCRIPT)], locktime=chain.height + 2,
                 sequence=0xFFFFFFFE)
    with pytest.raises(TxRejected, match="non-final"):
        chain.send(late.serialize())
    assert call(chain, "getutxout", txid=txid, vout=change) == {"amount": None, "script": None}
    chain.mine(1)
    assert call(chain, "sendrawtransaction", tx=first.serialize().hex(), allowhighfees=False)["success"] is True
    refused = call(chain, "sendrawtransaction", tx=twin.serialize().hex(), allowhighfees=False)
    assert refused["success"] is False and "missingorspent" in refused["errmsg"]


def test_answers_have_the_shapes_lightningd_parses(chain):
    assert call(chain, "getchaininfo", last_height=0) == {
        "chain": "regtest", "headercount": chain.height, "blockcount": chain.height, "ibd": False}
    fees = call(chain, "estimatefees")
    blocks = [f["blocks"] for f in fees["feerates"]]
    rates = [f["feerate"] for f in fees["feerates"]]
    assert blocks == sorted(blocks) == [2, 6, 12, 100] and rates == sorted(rates, reverse=True)
    assert fees["feerate_floor"] <= rates[-1]
    assert call(chain, "getrawblockbyheight", height=chain.height + 1) == {"blockhash": None, "block": None}


def _plugin_exchange(requests):
    proc = subprocess.Popen([sys.executable, str(BACKEND_PLUGIN)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    # Back to back, no separator: the plugin must find where each object ends (as jsmn does).
    data = "".join(json.dumps(r) for r in requests).encode()
    out, _ = proc.communicate(data, timeout=30)
    dec, text, replies = json.JSONDecoder(), out.decode(), []
    while text.strip():
        obj, end = dec.raw_decode(text.lstrip())
        replies.append(obj)
        text = text.lstrip()[end:]
    return {r["id"]: r for r in replies}


def test_the_backend_plugin_forwards_lightningds_calls_to_the_chain_server():
    server = ChainServer()
    try:
        replies = _plugin_exchange([
            {"jsonrpc": "2.0", "id": 1, "method": "getmanifest", "params": {}},
            {"jsonrpc": "2.0", "id": 2, "method": "init",
             "params": {"options": {"bitcoin-rpcport": str(server.port)}, "configuration": {}}},
            {"jsonrpc": "2.0", "id": 3, "method": "getchaininfo", "params": {"last_height": 5}},
            {"jsonrpc": "2.0", "id": 4, "method": "getrawblockbyheight", "params": {"height": 1}},
            {"jsonrpc": "2.0", "id": 5, "method": "sendrawtransaction", "params": {"tx": "00", "allowhighfees": True}},
        ])
    finally:
        server.close()
    methods = {m["name"] for m in replies[1]["result"]["rpcmethods"]}
    assert methods == {"getchaininfo", "estimatefees", "getrawblockbyheight", "getutxout", "sendrawtransaction"}
    assert "bitcoin-rpcport" in {o["name"] for o in replies[1]["result"]["options"]}
    assert replies[2]["result"] == {}
    assert replies[3]["result"]["blockcount"] == server.chain.height
    assert replies[4]["result"]["blockhash"] == hash_hex(server.chain.blocks[1].hash)
    assert replies[5]["result"]["success"] is False and "decode" in replies[5]["result"]["errmsg"]


def test_the_backend_plugin_disables_itself_without_a_port():
    replies = _plugin_exchange([{"jsonrpc": "2.0", "id": 1, "method": "init",
                                    "params": {"options": {}, "configuration": {}}}])
    assert "bitcoin-rpcport" in replies[1]["result"]["disable"]
    assert os.access(BACKEND_PLUGIN, os.X_OK)      # lightningd executes it directly
