"""Serves one Chain to every node of a test: a TCP socket on 127.0.0.1, one JSON object per
line each way. Requests are `{"method": m, "params": {...}}`; answers are `{"result": r}` or
`{"error": msg}`. The methods are lightningd's Bitcoin backend calls, answered with the
result shapes lightningd/bitcoind.c parses (the same plugins/bcli.c returns)."""
import json
import logging
import socketserver
import threading

from .bitcoin import hash_hex
from .chain import Chain, TxRejected

log = logging.getLogger("chain")


def getchaininfo(chain, last_height=None):
    h = chain.height
    return {"chain": "regtest", "headercount": h, "blockcount": h, "ibd": False}


def estimatefees(chain):
    # lightningd wants ascending `blocks` with feerates that never rise (sat per kVB).
    return {"feerate_floor": chain.feerate_floor,
            "feerates": [{"blocks": b, "feerate": r} for b, r in sorted(chain.feerates.items())]}


def getrawblockbyheight(chain, height):
    block = chain.block_at(int(height))
    if block is None:
        return {"blockhash": None, "block": None}
    return {"blockhash": hash_hex(block.hash), "block": block.serialize().hex()}


def getutxout(chain, txid, vout):
    out = chain.utxo(txid, int(vout))
    if out is None:
        return {"amount": None, "script": None}
    return {"amount": "%dsat" % out.value, "script": out.script.hex()}


def sendrawtransaction(chain, tx, allowhighfees=False):
    try:
        chain.send(bytes.fromhex(tx))
    except TxRejected as e:
        # bcli reports "already in the chain" (bitcoind's -27) as success, like bitcoin-cli's exit code.
        already = str(e) == "Transaction outputs already in utxo set"
        return {"success": already, "errmsg": "error code: %d\nerror message:\n%s" % (-27 if already else -26, e)}
    except ValueError as e:                     # not hex
        return {"success": False, "errmsg": "error code: -22\nerror message:\nTX decode failed: %s" % e}
    return {"success": True, "errmsg": ""}


BACKEND_METHODS = {f.__name__: f for f in (getchaininfo, estimatefees, getrawblockbyheight, getutxout,
                                           sendrawtransaction)}


class _Handler(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            try:
                req = json.loads(line)
                fn = BACKEND_METHODS[req["method"]]
                reply = {"result": fn(self.server.chain, **(req.get("params") or {}))}
            except (ValueError, KeyError, TypeError) as e:
                log.info("chain server: bad request %r: %s", line[:200], e)
                reply = {"error": "%s: %s" % (type(e).__name__, e)}
            self.wfile.write(json.dumps(reply).encode() + b"\n")
            self.wfile.flush()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class ChainServer:
    """A Chain and the socket its nodes' backend plugins talk to."""

    def __init__(self, chain=None, port=0):
        self.chain = chain or Chain()
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.chain = self.chain
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="chain-server", daemon=True)
        self._thread.start()

    def close(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
