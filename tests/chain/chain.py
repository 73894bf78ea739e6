"""An in-memory regtest chain: blocks mined on demand with valid proof of work, a UTXO set,
a mempool fed by `send`, and a faucet that pays any address from matured coinbases.

It checks what a node relies on (inputs exist and are unspent, coinbases are mature,
no money is created, the locktime is final) but not scripts or signatures: lightningd's
own signing is not what these tests are about."""
import hashlib
import struct
import threading
import time
from collections import OrderedDict

from .bitcoin import (COIN, Block, Tx, TxIn, TxOut, address_script, hash_hex, merkle_root, push_int,
                      sha256d, solve)

# The regtest genesis block, byte for byte (its hash is the chain's id, 0f9188f1...).
GENESIS_COINBASE = bytes.fromhex(
    "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04ffff001d0104"
    "455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f6620736563"
    "6f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0fe5548271967f1a6"
    "7130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6b"
    "f11d5fac00000000")
GENESIS_HASH = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"

# The faucet's coins pay to P2WSH(OP_TRUE): anyone may spend them with the script as witness,
# so faucet transactions are valid without keys.
FAUCET_WITNESS_SCRIPT = b"\x51"
FAUCET_SCRIPT = b"\x00\x20" + hashlib.sha256(FAUCET_WITNESS_SCRIPT).digest()
COINBASE_MATURITY = 100
HALVING_INTERVAL = 150          # regtest
FAUCET_FEE = 1_000
LOCKTIME_THRESHOLD = 500_000_000
# What pyln-testing's nodes ask bitcoind for by default (15000, 11000, 7500, 3750 perkw), in perkb.
DEFAULT_FEERATES = {2: 60_000, 6: 44_000, 12: 30_000, 100: 15_000}
FEERATE_FLOOR = 1_000


class TxRejected(Exception):
    """Refused by the mempool; the message is bitcoind's reason string."""


def subsidy(height):
    return (50 * COIN) >> (height // HALVING_INTERVAL)


class Coin:
    __slots__ = ("out", "height", "coinbase")

    def __init__(self, out, height, coinbase):
        self.out, self.height, self.coinbase = out, height, coinbase


class Chain:
    def __init__(self, mature=True):
        self.cond = threading.Condition()
        genesis_tx = Tx.parse(GENESIS_COINBASE)
        genesis = Block(bytes(32), genesis_tx.txid, 1296688602, [genesis_tx], nonce=2, version=1)
        self.blocks = [genesis]
        self.coins = {}                     # (txid, vout) -> Coin; genesis' output is unspendable
        self.confirmed = {}                 # txid -> height
        self.mempool = OrderedDict()        # txid -> (Tx, fee)
        self.mempool_spends = {}            # outpoint -> spending txid
        self.feerates = dict(DEFAULT_FEERATES)
        self.feerate_floor = FEERATE_FLOOR
        self._extranonce = 0
        if mature:
            self.mine(COINBASE_MATURITY + 1)  # the faucet's first coinbase can be spent

    @property
    def height(self):
        return len(self.blocks) - 1

    # --- blocks ---
    def mine(self, n=1, to_script=FAUCET_SCRIPT):
        """Mine n blocks, the first with every mempool transaction; returns their hashes (hex)."""
        hashes = []
        with self.cond:
            for _ in range(n):
                hashes.append(hash_hex(self._mine_one(to_script).hash))
            self.cond.notify_all()
        return hashes

    def _mine_one(self, to_script):
        height = self.height + 1
        txs = [tx for tx, _ in self.mempool.values()]
        fees = sum(fee for _, fee in self.mempool.values())
        self._extranonce += 1
        coinbase = Tx(2, [TxIn(bytes(32), 0xFFFFFFFF, push_int(height) + b"\x04" +
                               struct.pack("<I", self._extranonce))],
                      [TxOut(subsidy(height) + fees, to_script)])
        if any(i.witness for tx in txs for i in tx.inputs):
            # BIP 141: commit to the wtxids (the coinbase's counts as zero).
            root = merkle_root([bytes(32)] + [tx.wtxid for tx in txs])
            coinbase.inputs[0].witness = [bytes(32)]
            coinbase.outputs.append(TxOut(0, b"\x6a\x24\xaa\x21\xa9\xed" + sha256d(root + bytes(32))))
        txs = [coinbase] + txs
        prev = self.blocks[-1]
        block = solve(Block(prev.hash, merkle_root([t.txid for t in txs]), max(int(time.time()), prev.time + 1),
                            txs))
        self.blocks.append(block)
        for tx in txs:
            self._confirm(tx, height)
        self.mempool.clear()
        self.mempool_spends.clear()
        return block

    def _confirm(self, tx, height):
        txid = tx.txid
        for i in tx.inputs:
            self.coins.pop(i.outpoint, None)
        for n, out in enumerate(tx.outputs):
            if not out.script.startswith(b"\x6a"):      # OP_RETURN is never a coin
                self.coins[(txid, n)] = Coin(out, height, tx.is_coinbase)
        self.confirmed[txid] = height

    def block_at(self, height):
        with self.cond:
            return self.blocks[height] if 0 <= height <= self.height else None

    # --- transactions ---
    def send(self, raw: bytes) -> str:
        """Accept a transaction into the mempool; returns its txid (hex) or raises TxRejected."""
        try:
            tx = Tx.parse(raw)
        except ValueError as e:
            raise TxRejected("TX decode failed: %s" % e)
        with self.cond:
            txid = tx.txid
            if txid in self.mempool:
                return hash_hex(txid)
            if txid in self.confirmed:
                raise TxRejected("Transaction outputs already in utxo set")
            self._check(tx)
            fee = sum(self._spendable(i.outpoint).out.value for i in tx.inputs) - sum(o.value for o in tx.outputs)
            if fee < 0:
                raise TxRejected("bad-txns-in-belowout")
            self.mempool[txid] = (tx, fee)
            for i in tx.inputs:
                self.mempool_spends[i.outpoint] = txid
            self.cond.notify_all()
        return hash_hex(txid)

    def _check(self, tx):
        if tx.is_coinbase:
            raise TxRejected("coinbase")
        if not tx.inputs or not tx.outputs:
            raise TxRejected("bad-txns-vin-empty" if not tx.inputs else "bad-txns-vout-empty")
        if any(o.value < 0 for o in tx.outputs):
            raise TxRejected("bad-txns-vout-negative")
        if len({i.outpoint for i in tx.inputs}) != len(tx.inputs):
            raise TxRejected("bad-txns-inputs-duplicate")
        next_height = self.height + 1
        if tx.locktime and not all(i.sequence == 0xFFFFFFFF for i in tx.inputs):
            limit = next_height if tx.locktime < LOCKTIME_THRESHOLD else int(time.time())
            if tx.locktime >= limit:
                raise TxRejected("non-final")
        for i in tx.inputs:
            if i.outpoint in self.mempool_spends:
                raise TxRejected("txn-mempool-conflict")
            coin = self._spendable(i.outpoint)
            if coin is None:
                raise TxRejected("bad-txns-inputs-missingorspent")
            if coin.coinbase and next_height - coin.height < COINBASE_MATURITY:
                raise TxRejected("bad-txns-premature-spend-of-coinbase")

    def _spendable(self, outpoint):
        """The coin at outpoint, confirmed or made by a mempool transaction (not yet spent)."""
        if outpoint in self.mempool_spends:
            return None
        coin = self.coins.get(outpoint)
        if coin is None and outpoint[0] in self.mempool:
            outs = self.mempool[outpoint[0]][0].outputs
            if outpoint[1] < len(outs):
                coin = Coin(outs[outpoint[1]], None, False)
        return coin

    def utxo(self, txid_hex: str, vout: int):
        """The unspent output as bitcoind's `gettxout` (mempool included) sees it, or None."""
        with self.cond:
            coin = self._spendable((bytes.fromhex(txid_hex)[::-1], vout))
            return coin.out if coin else None

    def fund(self, address: str, amount_sat: int) -> str:
        """Pay amount_sat to address from the faucet (into the mempool); returns the txid."""
        script = address_script(address)
        with self.cond:
            coin_point = self._faucet_coin(amount_sat + FAUCET_FEE)
            value = self._spendable(coin_point).out.value
            outs = [TxOut(amount_sat, script)]
            change = value - amount_sat - FAUCET_FEE
            if change > 0:
                outs.append(TxOut(change, FAUCET_SCRIPT))
            tx = Tx(2, [TxIn(coin_point[0], coin_point[1], witness=[FAUCET_WITNESS_SCRIPT])], outs)
            return self.send(tx.serialize())

    def _faucet_coin(self, need):
        next_height = self.height + 1
        for tx, _ in reversed(self.mempool.values()):        # unconfirmed change first
            for n, o in enumerate(tx.outputs):
                if o.script == FAUCET_SCRIPT and o.value >= need and (tx.txid, n) not in self.mempool_spends:
                    return (tx.txid, n)
        for point, coin in self.coins.items():
            if (coin.out.script == FAUCET_SCRIPT and coin.out.value >= need and point not in self.mempool_spends
                    and (not coin.coinbase or next_height - coin.height >= COINBASE_MATURITY)):
                return point
        raise TxRejected("the faucet has no coin of %d sat; mine more blocks" % need)

    def wait_mempool(self, txids, timeout):
        """Block until every txid (hex) is in the mempool; False on timeout."""
        want = {bytes.fromhex(t)[::-1] for t in txids}
        with self.cond:
            return self.cond.wait_for(lambda: want <= set(self.mempool), timeout)

    def wait_mempool_size(self, n, timeout):
        with self.cond:
            return self.cond.wait_for(lambda: len(self.mempool) >= n, timeout)
