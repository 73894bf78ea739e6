"""Bitcoin's byte formats, as much as a regtest chain needs: transactions (with segwit),
blocks, merkle roots, regtest proof of work and segwit addresses (BIP 173/350)."""
import hashlib
import struct
from dataclasses import dataclass, field
from typing import List

REGTEST_BITS = 0x207FFFFF
COIN = 100_000_000


def sha256d(b: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(b).digest()).digest()


def hash_hex(h: bytes) -> str:
    """Bitcoin shows hashes byte-reversed."""
    return h[::-1].hex()


def ser_compact(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + struct.pack("<H", n)
    if n <= 0xFFFFFFFF:
        return b"\xfe" + struct.pack("<I", n)
    return b"\xff" + struct.pack("<Q", n)


class Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError("truncated at byte %d" % self.pos)
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self):
        return self.take(1)[0]

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def u64(self):
        return struct.unpack("<Q", self.take(8))[0]

    def compact(self):
        n = self.u8()
        if n == 0xFD:
            return struct.unpack("<H", self.take(2))[0]
        if n == 0xFE:
            return self.u32()
        if n == 0xFF:
            return self.u64()
        return n

    def var_bytes(self):
        return self.take(self.compact())


@dataclass
class TxIn:
    txid: bytes            # internal byte order
    vout: int
    script_sig: bytes = b""
    sequence: int = 0xFFFFFFFF
    witness: List[bytes] = field(default_factory=list)

    @property
    def outpoint(self):
        return (self.txid, self.vout)


@dataclass
class TxOut:
    value: int             # satoshis
    script: bytes


@dataclass
class Tx:
    version: int
    inputs: List[TxIn]
    outputs: List[TxOut]
    locktime: int = 0

    def serialize(self, with_witness=True) -> bytes:
        segwit = with_witness and any(i.witness for i in self.inputs)
        out = [struct.pack("<i", self.version)]
        if segwit:
            out.append(b"\x00\x01")
        out.append(ser_compact(len(self.inputs)))
        for i in self.inputs:
            out += [i.txid, struct.pack("<I", i.vout), ser_compact(len(i.script_sig)), i.script_sig,
                    struct.pack("<I", i.sequence)]
        out.append(ser_compact(len(self.outputs)))
        for o in self.outputs:
            out += [struct.pack("<q", o.value), ser_compact(len(o.script)), o.script]
        if segwit:
            for i in self.inputs:
                out.append(ser_compact(len(i.witness)))
                out += [ser_compact(len(w)) + w for w in i.witness]
        out.append(struct.pack("<I", self.locktime))
        return b"".join(out)

    @property
    def txid(self) -> bytes:
        return sha256d(self.serialize(with_witness=False))

    @property
    def wtxid(self) -> bytes:
        return sha256d(self.serialize())

    @property
    def is_coinbase(self):
        return len(self.inputs) == 1 and self.inputs[0].txid == bytes(32) and self.inputs[0].vout == 0xFFFFFFFF

    @classmethod
    def parse(cls, data: bytes) -> "Tx":
        r = Reader(data)
        tx = cls._read(r)
        if r.pos != len(data):
            raise ValueError("%d bytes after the transaction" % (len(data) - r.pos))
        return tx

    @classmethod
    def _read(cls, r: Reader) -> "Tx":
        version = struct.unpack("<i", r.take(4))[0]
        n_in = r.compact()
        segwit = n_in == 0
        if segwit:
            if r.u8() != 1:
                raise ValueError("bad segwit flag")
            n_in = r.compact()
        inputs = []
        for _ in range(n_in):
            txid, vout = r.take(32), r.u32()
            inputs.append(TxIn(txid, vout, r.var_bytes(), r.u32()))
        outputs = [TxOut(struct.unpack("<q", r.take(8))[0], r.var_bytes()) for _ in range(r.compact())]
        if segwit:
            for i in inputs:
                i.witness = [r.var_bytes() for _ in range(r.compact())]
        return cls(version, inputs, outputs, r.u32())


def merkle_root(hashes: List[bytes]) -> bytes:
    level = list(hashes)
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


@dataclass
class Block:
    prev: bytes
    merkle: bytes
    time: int
    txs: List[Tx]
    bits: int = REGTEST_BITS
    nonce: int = 0
    version: int = 0x20000000

    def header(self) -> bytes:
        return struct.pack("<i", self.version) + self.prev + self.merkle + struct.pack("<III", self.time, self.bits,
                                                                                        self.nonce)

    @property
    def hash(self) -> bytes:
        return sha256d(self.header())

    def serialize(self) -> bytes:
        return self.header() + ser_compact(len(self.txs)) + b"".join(t.serialize() for t in self.txs)

    @classmethod
    def parse(cls, data: bytes) -> "Block":
        r = Reader(data)
        version = struct.unpack("<i", r.take(4))[0]
        prev, merkle = r.take(32), r.take(32)
        time, bits, nonce = r.u32(), r.u32(), r.u32()
        txs = [Tx._read(r) for _ in range(r.compact())]
        return cls(prev, merkle, time, txs, bits, nonce, version)


def target(bits: int) -> int:
    return (bits & 0xFFFFFF) << (8 * ((bits >> 24) - 3))


def meets_target(block: Block) -> bool:
    return int.from_bytes(block.hash, "little") <= target(block.bits)


def solve(block: Block) -> Block:
    """Find a nonce for regtest's target (about every other try meets it)."""
    block.nonce = 0
    while not meets_target(block):
        block.nonce += 1
    return block


def push_int(n: int) -> bytes:
    """A minimal script push of a number (BIP 34's coinbase height)."""
    if n == 0:
        return b"\x00"
    if 1 <= n <= 16:
        return bytes([0x50 + n])
    b = n.to_bytes((n.bit_length() + 8) // 8, "little")
    return bytes([len(b)]) + b


# --- segwit addresses: BIP 173 (bech32, v0) and BIP 350 (bech32m, v1+) ---
_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32M = 0x2BC830A3


def _polymod(values):
    gen = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk


def _hrp_expand(hrp):
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convertbits(data, frm, to, pad):
    acc, bits, out, maxv = 0, 0, [], (1 << to) - 1
    for v in data:
        acc = (acc << frm) | v
        bits += frm
        while bits >= to:
            bits -= to
            out.append((acc >> bits) & maxv)
    if pad and bits:
        out.append((acc << (to - bits)) & maxv)
    elif not pad and (bits >= frm or ((acc << (to - bits)) & maxv)):
        raise ValueError("bad padding")
    return out


def address_script(addr: str, hrp: str = "bcrt") -> bytes:
    """The scriptPubKey a segwit address pays to."""
    a = addr.lower()
    pos = a.rfind("1")
    if a[:pos] != hrp or pos + 7 > len(a) or any(c not in _CHARSET for c in a[pos + 1:]):
        raise ValueError("not a %s segwit address: %r" % (hrp, addr))
    data = [_CHARSET.find(c) for c in a[pos + 1:]]
    const = _polymod(_hrp_expand(hrp) + data)
    ver = data[0]
    if const != (1 if ver == 0 else _BECH32M):
        raise ValueError("bad checksum: %r" % addr)
    prog = bytes(_convertbits(data[1:-6], 5, 8, False))
    if ver > 16 or not 2 <= len(prog) <= 40 or (ver == 0 and len(prog) not in (20, 32)):
        raise ValueError("bad witness program: %r" % addr)
    return bytes([0x50 + ver if ver else 0, len(prog)]) + prog


def script_address(script: bytes, hrp: str = "bcrt") -> str:
    ver = 0 if script[0] == 0 else script[0] - 0x50
    data = [ver] + _convertbits(script[2:], 8, 5, True)
    const = 1 if ver == 0 else _BECH32M
    poly = _polymod(_hrp_expand(hrp) + data + [0] * 6) ^ const
    return hrp + "1" + "".join(_CHARSET[d] for d in data + [(poly >> 5 * (5 - i)) & 31 for i in range(6)])
