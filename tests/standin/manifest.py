"""How lightningd checks a plugin's manifest and builds its init options.

protocol doc §1.1 (manifest rules) and §1.2 (init options), plugin.c in CLN.
"""
import re

OPTION_TYPES = ("string", "string-conceal", "int", "bool", "flag")
OPTION_NAME = re.compile(r"^[0-9a-z_-]+$")
# Hooks lightningd knows (plugin_hook.c registrations); an unknown name kills the plugin.
KNOWN_HOOKS = frozenset((
    "peer_connected", "commitment_revocation", "db_write", "invoice_payment",
    "openchannel", "openchannel2", "openchannel2_changed", "openchannel2_sign",
    "rbf_channel", "htlc_accepted", "rpc_command", "custommsg",
    "onion_message_recv", "onion_message_recv_secret", "recover",
))
FILTERABLE_HOOKS = frozenset(("custommsg", "rpc_command"))
# Native notification topics: a plugin may not declare these as its own.
NATIVE_TOPICS = frozenset((
    "channel_opened", "channel_open_failed", "channel_state_changed", "connect",
    "disconnect", "invoice_payment", "invoice_creation", "warning", "forward_event",
    "sendpay_success", "sendpay_failure", "coin_movement", "balance_snapshot",
    "openchannel_peer_sigs", "onionmessage_forward_fail", "shutdown",
    "plugin_started", "plugin_stopped", "custommsg", "block_added", "log",
    "deprecated_oneshot", "pay_part_start", "pay_part_end",
))
_TRUE = ("true", "yes", "1")
_FALSE = ("false", "no", "0")


class ManifestError(ValueError):
    """lightningd would kill the plugin with this reason."""


class OptionValueError(ValueError):
    """lightningd would refuse to start (or setconfig would fail) with this reason."""


def _is_u16(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 0xFFFF


def validate_manifest(m, taken_options=(), taken_methods=()) -> None:
    """Raise ManifestError for anything lightningd rejects. `taken_*` are names other
    plugins (and lightningd itself) already registered."""
    if not isinstance(m, dict):
        raise ManifestError("getmanifest response is not an object")
    if "disable" in m:
        return  # checked by the caller: a disabled plugin is not validated further
    for key in ("options", "rpcmethods"):
        if not isinstance(m.get(key), list):
            raise ManifestError("\"result.%s\" missing or not an array" % key)
    if "dynamic" in m and not isinstance(m["dynamic"], bool):
        raise ManifestError("Bad 'dynamic' field")
    if "nonnumericids" in m and m["nonnumericids"] is not True:
        raise ManifestError("Invalid nonnumericids: we only support true")
    feats = m.get("featurebits") or {}
    if not isinstance(feats, dict):
        raise ManifestError("featurebits must be an object")
    if any(v for v in feats.values()) and m.get("dynamic", False):
        raise ManifestError("Custom featurebits only allows for non-dynamic plugins")
    cms = m.get("custommessages", [])
    if not isinstance(cms, list) or not all(_is_u16(t) for t in cms):
        raise ManifestError("custommessages must be an array of u16")
    for n in m.get("notifications", []):
        if not isinstance(n, dict) or not isinstance(n.get("method"), str):
            raise ManifestError("notifications entries must have a string method")
        if n["method"] in NATIVE_TOPICS:
            raise ManifestError("plugin attempted to register a native notification topic \"%s\"" % n["method"])
    subs = m.get("subscriptions", [])
    if not isinstance(subs, list) or not all(isinstance(s, str) for s in subs):
        raise ManifestError("subscriptions must be an array of strings")
    seen_opts = set(taken_options)
    for o in m["options"]:
        _check_option(o, seen_opts)
        seen_opts.add(o["name"])
    seen_methods = set(taken_methods)
    for meth in m["rpcmethods"]:
        if not isinstance(meth, dict) or not isinstance(meth.get("name"), str):
            raise ManifestError("rpcmethod has no name")
        if not isinstance(meth.get("usage"), str):
            raise ManifestError("\"usage\" not provided by plugin for method %s" % meth["name"])
        if meth["name"] in seen_methods:
            raise ManifestError("Could not register method \"%s\", a method with that name is already registered" % meth["name"])
        seen_methods.add(meth["name"])
    for h in m.get("hooks", []):
        name = h if isinstance(h, str) else (h.get("name") if isinstance(h, dict) else None)
        if name not in KNOWN_HOOKS:
            raise ManifestError("could not register hook '%s', either the name doesn't exist or another plugin already registered it." % name)
        filters = h.get("filters") if isinstance(h, dict) else None
        if filters is not None:
            if name not in FILTERABLE_HOOKS:
                raise ManifestError("hook %s does not allow filters" % name)
            if name == "custommsg" and not all(_is_u16(t) for t in filters):
                raise ManifestError("custommsg filters must be u16 message types")


def _check_option(o, seen) -> None:
    if not isinstance(o, dict) or not all(k in o for k in ("name", "type", "description")):
        raise ManifestError("An option is missing either \"name\", \"description\" or \"type\"")
    name, typ = o["name"], o["type"]
    if not isinstance(name, str) or not OPTION_NAME.match(name):
        raise ManifestError("Option \"%s\" name must be lowercase [0-9a-z_-]" % name)
    if name in seen:
        raise ManifestError("Duplicate option name %s" % name)
    if typ not in OPTION_TYPES:
        raise ManifestError("Only \"string\", \"string-conceal\", \"int\", \"bool\", and \"flag\" options are supported")
    multi = o.get("multi", False)
    if typ in ("flag", "bool") and multi:
        raise ManifestError("%s type cannot be multi" % typ)
    if typ == "flag" and o.get("default") not in (None, False):
        raise ManifestError("flag type can only default to false")
    dep = o.get("deprecated", False)
    if not (isinstance(dep, bool) or (isinstance(dep, list) and all(isinstance(v, str) for v in dep))):
        raise ManifestError("%s: invalid deprecated field" % name)
    default = o.get("default")
    if default is not None and typ != "flag":
        try:
            for v in (default if isinstance(default, list) else [default]):
                convert_option(o, v)
        except OptionValueError as e:
            raise ManifestError("%s: bad default: %s" % (name, e))


def convert_option(o, value):
    """Parse one value like lightningd parses the command line; returns the JSON value."""
    typ = o["type"]
    if typ == "int":
        if isinstance(value, bool):
            raise OptionValueError("'%s' is not a number" % value)
        if isinstance(value, int):
            return value
        try:
            return int(str(value).strip(), 10)
        except ValueError:
            raise OptionValueError("'%s' is not a number" % value)
    if typ == "bool":
        if isinstance(value, bool):
            return value
        s = str(value).lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
        raise OptionValueError("Invalid argument '%s'" % value)
    if typ == "flag":
        if value is True or value is None:
            return True
        raise OptionValueError("%s does not take an argument" % o["name"])
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def build_init_options(manifest_options, given: dict) -> dict:
    """The `options` object of init: declared options only, typed, unset ones without
    a default omitted (plugin.c:2116-2173)."""
    out = {}
    for o in manifest_options:
        name = o["name"]
        if name in given:
            value = given[name]
            if o["type"] == "flag" and value is False:
                continue
        elif o.get("default") is not None and not (o["type"] == "flag" or o.get("default") == []):
            value = o["default"]
        else:
            continue
        try:
            if o.get("multi"):
                out[name] = [convert_option(o, v) for v in (value if isinstance(value, list) else [value])]
            else:
                out[name] = convert_option(o, value)
        except OptionValueError as e:
            raise OptionValueError("--%s: %s" % (name, e))
    return out


def hook_names(m) -> list:
    return [h if isinstance(h, str) else h["name"] for h in m.get("hooks", [])]


def hook_filters(m, hook: str):
    """The filters list for `hook`, or None when the plugin wants every call."""
    for h in m.get("hooks", []):
        if isinstance(h, dict) and h.get("name") == hook:
            return h.get("filters")
    return None
