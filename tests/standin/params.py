"""lightningd's parameter parsing (common/json_param.c) and error type."""
import json
import re

import coincurve

INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
LIGHTNINGD = -1
PLUGIN_ERROR = -3
PLUGIN_TERMINATED = -4


class RpcFail(Exception):
    def __init__(self, code, message, data=None):
        super().__init__(message)
        self.code, self.message, self.data = code, message, data

    def error(self):
        err = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err


def _token(v) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def bad(name, msg, value):
    # Developer mode (what pyln-testing runs) echoes the token (common/json_command.c).
    return RpcFail(INVALID_PARAMS, "%s: %s: invalid token '%s'" % (name, msg, _token(value)))


def node_id(name, v):
    try:
        if isinstance(v, str) and len(v) == 66:
            coincurve.PublicKey(bytes.fromhex(v))
            return v.lower()
    except ValueError:
        pass  # falls through to the error lightningd gives
    raise bad(name, "should be a node id", v)


def string(name, v):
    if isinstance(v, str):
        return v
    raise bad(name, "should be a string", v)


def hexstr(name, v):
    if isinstance(v, str) and len(v) % 2 == 0 and re.fullmatch(r"[0-9a-fA-F]*", v):
        return v.lower()
    raise bad(name, "should be a hex value", v)


def u64(name, v):
    if isinstance(v, bool):
        raise bad(name, "should be an unsigned 64 bit integer", v)
    if isinstance(v, int) and v >= 0:
        return v
    if isinstance(v, str) and v.isdigit():
        return int(v)
    raise bad(name, "should be an unsigned 64 bit integer", v)


def boolean(name, v):
    if isinstance(v, bool):
        return v
    if v in ("true", "false"):
        return v == "true"
    raise bad(name, "should be 'true' or 'false'", v)


def msat(name, v):
    """Integer msat, or strings like "10msat", "10sat", "0.1btc"."""
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return v
    if isinstance(v, str):
        m = re.fullmatch(r"(\d+)(msat|sat)?|(\d+(?:\.\d{1,11})?)btc", v)
        if m and m.group(1):
            n = int(m.group(1))
            return n * 1000 if m.group(2) == "sat" else n
        if m and m.group(3):
            return int(round(float(m.group(3)) * 100_000_000_000))
    raise bad(name, "should be a millisatoshi amount", v)


def sat_or_all(name, v):
    """Satoshi amount or "all" (fundchannel's amount). Returns sat int or "all"."""
    if v == "all":
        return "all"
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return v
    if isinstance(v, str):
        m = re.fullmatch(r"(\d+)(sat|msat)?|(\d+(?:\.\d{1,8})?)btc", v)
        if m and m.group(1) and m.group(2) != "msat":
            return int(m.group(1))
        if m and m.group(1) and int(m.group(1)) % 1000 == 0:
            return int(m.group(1)) // 1000
        if m and m.group(3):
            return int(round(float(m.group(3)) * 100_000_000))
    raise bad(name, "should be a satoshi amount", v)


def anything(name, v):
    return v


REQ, OPT = True, False


def parse(params, *spec, allow_extra=False):
    """spec: (name, required, parser[, default]). Returns dict name -> value (default if absent).

    With allow_extra, unknown keyword parameters are returned under "__extra__"."""
    names = [s[0] for s in spec]
    out, extra = {}, {}
    if isinstance(params, list):
        if len(params) > len(spec):
            raise RpcFail(INVALID_PARAMS, "too many parameters: got %d, expected %d" % (len(params), len(spec)))
        given = dict(zip(names, params))
    elif isinstance(params, dict):
        given = {}
        for k, v in params.items():
            if k in names:
                given[k] = v
            elif allow_extra:
                extra[k] = v
            else:
                raise RpcFail(INVALID_PARAMS, "unknown parameter: %s, this may be caused by a failure to "
                              "autodetect key=value-style parameters. Use the '-k' flag to force key=value style." % k)
    else:
        raise RpcFail(INVALID_PARAMS, "Expected array or object for params")
    for s in spec:
        name, required, parser = s[0], s[1], s[2]
        if name in given and given[name] is not None:
            out[name] = parser(name, given[name])
        elif required:
            raise RpcFail(INVALID_PARAMS, "missing required parameter: %s" % name)
        else:
            out[name] = s[3] if len(s) > 3 else None
    if allow_extra:
        out["__extra__"] = extra
    return out
