"""What pyln-testing's NodeFactory and LightningNode expect of their `bitcoind`, served by
our chain: `get_proxy()` (whose `rpcport` becomes each node's `--bitcoin-rpcport`, which
our backend plugin reads as the chain server's port, and whose `mock_rpc` sets fee
estimates), `canned_blocks`, `generate_block`, and an `rpc` with the few bitcoind calls
pyln-testing's helpers make."""
from decimal import Decimal
from pathlib import Path

from .bitcoin import COIN, address_script
from .chain import FAUCET_SCRIPT
from .server import ChainServer, getchaininfo

BACKEND_PLUGIN = Path(__file__).resolve().parent / "backend_plugin.py"
WAIT = 60.0
# The estimatesmartfee arguments bcli asks for, in the order of Chain.feerates' keys.
_ESTIMATES = ((2, "CONSERVATIVE"), (6, "ECONOMICAL"), (12, "ECONOMICAL"), (100, "ECONOMICAL"))


class ChainProxy:
    """One per node, as pyln-testing's BitcoinRpcProxy: the port, and fee mocks."""

    def __init__(self, chain, port):
        self.chain, self.rpcport = chain, port
        self.mock_counts = {}

    def mock_rpc(self, method, fn=None):
        self.mock_counts[method] = 0
        if fn is None:
            return
        if method == "estimatesmartfee":
            rates = [fn({"id": 0, "params": [b, style]})["result"]["feerate"] for b, style in _ESTIMATES]
            self.chain.feerates = {b: int(Decimal(r) * COIN) for (b, _), r in zip(_ESTIMATES, rates)}
        elif method == "getmempoolinfo":
            self.chain.feerate_floor = int(Decimal(fn({"id": 0})["result"]["mempoolminfee"]) * COIN)
        else:
            raise NotImplementedError("our chain cannot mock %s" % method)

    def stop(self):
        pass


class ChainRpc:
    """The bitcoind RPC calls pyln-testing's helpers use (sync_blockheight, fundwallet, join_nodes)."""

    def __init__(self, chain):
        self.chain = chain

    def getblockchaininfo(self):
        info = getchaininfo(self.chain)
        return {"chain": info["chain"], "blocks": info["blockcount"], "headers": info["headercount"],
                "initialblockdownload": False}

    def getblockcount(self):
        return self.chain.height

    def sendtoaddress(self, address, amount_btc):
        return self.chain.fund(address, int(Decimal(str(amount_btc)) * COIN))

    def sendrawtransaction(self, tx_hex, *_):
        return self.chain.send(bytes.fromhex(tx_hex))

    def getrawmempool(self):
        with self.chain.cond:
            return [t[::-1].hex() for t in self.chain.mempool]

    def generatetoaddress(self, n, address):
        return self.chain.mine(n, address_script(address))


class RegtestBitcoind:
    """Stands where pyln-testing puts its BitcoinD."""
    canned_blocks = None

    def __init__(self):
        # A port pyln-testing will not also hand to a node (it reserves its nodes' ports).
        from pyln.testing.utils import reserve_unused_port
        self.server = ChainServer(port=reserve_unused_port())
        self.chain = self.server.chain
        self.rpc = ChainRpc(self.chain)
        self.rpcport = self.server.port

    def get_proxy(self):
        return ChainProxy(self.chain, self.server.port)

    def generate_block(self, numblocks=1, wait_for_mempool=0, to_addr=None, needfeerate=None):
        if wait_for_mempool:
            if isinstance(wait_for_mempool, str):
                wait_for_mempool = [wait_for_mempool]
            ok = (self.chain.wait_mempool(wait_for_mempool, WAIT) if isinstance(wait_for_mempool, list)
                  else self.chain.wait_mempool_size(int(wait_for_mempool), WAIT))
            if not ok:
                raise TimeoutError("mempool never held %r" % (wait_for_mempool,))
        return self.chain.mine(numblocks, address_script(to_addr) if to_addr else FAUCET_SCRIPT)

    def start(self):
        pass

    def stop(self):
        from pyln.testing.utils import drop_unused_port
        self.server.close()
        drop_unused_port(self.server.port)
