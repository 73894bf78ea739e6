"""Node keys, zbase32 and CLN's signmessage/checkmessage (real secp256k1)."""
import hashlib

import coincurve

ZBASE32_ALPHABET = "ybndrfg8ejkmcpqxot1uwisza345h769"
_ZBASE32_INDEX = {c: i for i, c in enumerate(ZBASE32_ALPHABET)}
SIGNED_MESSAGE_PREFIX = b"Lightning Signed Message:"


def zbase32_encode(data: bytes) -> str:
    """Bits packed MSB-first, last quintet zero-padded (as CLN does)."""
    bits = int.from_bytes(data, "big") if data else 0
    nbits = len(data) * 8
    pad = (-nbits) % 5
    bits <<= pad
    n = (nbits + pad) // 5
    return "".join(ZBASE32_ALPHABET[(bits >> (5 * (n - 1 - i))) & 31] for i in range(n))


def zbase32_decode(text: str) -> bytes:
    """Inverse of zbase32_encode; raises ValueError on a character outside the alphabet."""
    bits = 0
    for c in text:
        if c not in _ZBASE32_INDEX:
            raise ValueError("not valid zbase32")
        bits = (bits << 5) | _ZBASE32_INDEX[c]
    nbits = len(text) * 5
    nbytes = nbits // 8
    return (bits >> (nbits - nbytes * 8)).to_bytes(nbytes, "big") if nbytes else b""


def message_digest(message: str) -> bytes:
    """SHA256(SHA256("Lightning Signed Message:" + message)) (hsmd/libhsmd.c)."""
    inner = hashlib.sha256(SIGNED_MESSAGE_PREFIX + message.encode("utf-8")).digest()
    return hashlib.sha256(inner).digest()


class SignatureFormatError(ValueError):
    """The zbase string cannot be a signature (checkmessage answers -32602)."""


def recover_pubkey(message: str, zbase: str):
    """Return the compressed pubkey hex that signed `message`, or None if recovery fails.

    Raises SignatureFormatError with lightningd's wording for malformed input.
    """
    try:
        raw = zbase32_decode(zbase)
    except ValueError:
        raise SignatureFormatError("zbase is not valid zbase32")
    if len(raw) < 65:
        raise SignatureFormatError("zbase is too short")
    if len(raw) > 65:
        raise SignatureFormatError("zbase is too long")
    recid = raw[0] - 31
    if recid not in (0, 1, 2, 3):
        raise SignatureFormatError("cannot parse zbase signature")
    sig = raw[1:] + bytes([recid])
    try:
        pub = coincurve.PublicKey.from_signature_and_message(sig, message_digest(message), hasher=None)
    except ValueError:
        # secp256k1_ecdsa_recover failed: lightningd reports verified=false.
        return None
    return pub.format(compressed=True).hex()


class NodeKey:
    """A node's secp256k1 key; deterministic when built from a seed."""

    def __init__(self, secret: bytes):
        self._key = coincurve.PrivateKey(secret)
        self.node_id = self._key.public_key.format(compressed=True).hex()

    @classmethod
    def from_seed(cls, seed) -> "NodeKey":
        if isinstance(seed, str):
            seed = seed.encode("utf-8")
        return cls(hashlib.sha256(b"standin-node-key:" + seed).digest())

    def sign_message(self, message: str) -> dict:
        """signmessage's result shape: signature (r||s hex), recid ("%02x"), zbase."""
        sig = self._key.sign_recoverable(message_digest(message), hasher=None)
        rs, recid = sig[:64], sig[64]
        return {
            "signature": rs.hex(),
            "recid": "%02x" % recid,
            "zbase": zbase32_encode(bytes([31 + recid]) + rs),
        }
