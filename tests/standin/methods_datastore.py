"""datastore / listdatastore / deldatastore (§5): lightningd's key-value store, kept on the
Node object so it survives a restart as lightningd's database does."""
import threading

from . import params as P
from .params import OPT, REQ, RpcFail

MODES = ("must-create", "must-replace", "create-or-replace", "must-append", "create-or-append")
_lock = threading.Lock()


def _key(name, v):
    if isinstance(v, str):
        return (v,)
    if isinstance(v, list) and v and all(isinstance(x, str) for x in v):
        return tuple(v)
    raise P.bad(name, "should be a string or array of strings", v)


def _store(node):
    return node.datastore  # tuple key -> (generation, bytes)


def _entry(key, gen, raw):
    out = {"key": list(key), "generation": gen, "hex": raw.hex()}
    try:
        out["string"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        pass  # binary values have only hex, as in CLN
    return out


def datastore(node, params):
    a = P.parse(params, ("key", REQ, _key), ("string", OPT, P.string), ("hex", OPT, P.hexstr),
                ("mode", OPT, P.string, "must-create"), ("generation", OPT, P.u64))
    if a["mode"] not in MODES:
        raise P.bad("mode", "should be one of %s" % ", ".join(MODES), a["mode"])
    if (a["string"] is None) == (a["hex"] is None):
        raise RpcFail(P.INVALID_PARAMS, "Must have either hex or string")
    value = a["string"].encode("utf-8") if a["string"] is not None else bytes.fromhex(a["hex"])
    key = a["key"]
    with _lock:
        store = _store(node)
        for i in range(1, len(key)):
            if key[:i] in store:
                raise RpcFail(1206, "Parent key %s exists" % list(key[:i]))
        if any(k[:len(key)] == key and len(k) > len(key) for k in store):
            raise RpcFail(1205, "Key has children")
        old = store.get(key)
        if old is None and a["mode"] in ("must-replace", "must-append"):
            raise RpcFail(1203, "Key does not exist")
        if old is not None and a["mode"] == "must-create":
            raise RpcFail(1202, "Key already exists")
        if old is not None and a["generation"] is not None and a["generation"] != old[0]:
            raise RpcFail(1204, "generation is different")
        if old is not None and a["mode"].endswith("append"):
            value = old[1] + value
        gen = 0 if old is None else old[0] + 1
        store[key] = (gen, value)
    return _entry(key, gen, value)


def listdatastore(node, params):
    a = P.parse(params, ("key", OPT, _key))
    prefix = a["key"] or ()
    with _lock:
        items = sorted((k, v) for k, v in _store(node).items() if k[:len(prefix)] == prefix)
    return {"datastore": [_entry(k, g, raw) for k, (g, raw) in items]}


def deldatastore(node, params):
    a = P.parse(params, ("key", REQ, _key), ("generation", OPT, P.u64))
    with _lock:
        store = _store(node)
        old = store.get(a["key"])
        if old is None:
            raise RpcFail(1200, "Key does not exist")
        if a["generation"] is not None and a["generation"] != old[0]:
            raise RpcFail(1201, "generation is different")
        del store[a["key"]]
    return _entry(a["key"], old[0], old[1])


METHODS = {"datastore": datastore, "listdatastore": listdatastore, "deldatastore": deldatastore}
