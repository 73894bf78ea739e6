"""Every signature cl-hive makes or checks, through lightningd's signmessage/checkmessage
(the node key never leaves lightningd's HSM; the plugin holds no crypto library).

The signed string is domain-separated: protocol name and version, hive id, message kind,
then the canonical JSON of every field that carries meaning:

    cl-hive/1|<hive_id>|<KIND>|<canonical JSON>

Canonical JSON: keys sorted, no whitespace (`,` and `:` separators), ASCII only (`\\uXXXX`
escapes), integers without exponent. Only our own structures are ever signed: a peer's
input enters a signed string only as a field value whose format was checked first.
"""
from __future__ import annotations

import json

from pyln.client import RpcError

from handlers.wire.framing import PROTOCOL, VERSION


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def signed_string(hive_id: str, kind: str, fields: dict) -> str:
    return f"{PROTOCOL}/{VERSION}|{hive_id}|{kind}|{canonical_json(fields)}"


def sign(lightning, hive_id: str, kind: str, fields: dict) -> str:
    """The zbase32 signature of our node key over the domain-separated string."""
    return lightning.call("signmessage",
                          {"message": signed_string(hive_id, kind, fields)})["zbase"]


def verify(lightning, pubkey: str, hive_id: str, kind: str, fields: dict, zbase: str,
           canonical: str | None = None) -> bool:
    """True only if `zbase` is `pubkey`'s signature over exactly these fields. The expected
    key is always passed, so lightningd never looks the signer up in its graph.
    `canonical`: `canonical_json(fields)`, when the caller has it already."""
    try:
        res = lightning.call("checkmessage", _check(pubkey, hive_id, kind, fields, zbase,
                                                    canonical))
    except RpcError as e:
        # lightningd rejects malformed zbase with -32602: a bad signature, not a fault.
        if isinstance(e.error, dict) and e.error.get("code") == -32602:
            return False
        raise
    return res.get("verified") is True and res.get("pubkey") == pubkey


def prefetch(lightning, pubkey: str, hive_id: str, kind: str, fields: dict, zbase: str,
             canonical: str | None = None) -> None:
    """Ask lightningd now the question `verify` will ask with these arguments, where the
    door to lightningd keeps answers for later (effects.Prefetching); else nothing."""
    if hasattr(lightning, "prefetch"):
        lightning.prefetch("checkmessage", _check(pubkey, hive_id, kind, fields, zbase,
                                                  canonical))


def _check(pubkey, hive_id, kind, fields, zbase, canonical=None) -> dict:
    message = signed_string(hive_id, kind, fields) if canonical is None else \
        f"{PROTOCOL}/{VERSION}|{hive_id}|{kind}|{canonical}"
    return {"message": message, "zbase": zbase, "pubkey": pubkey}
