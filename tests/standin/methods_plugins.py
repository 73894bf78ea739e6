"""Plugin management methods: plugin (list/start/stop), setconfig, listconfigs (§1.3, §1.7)."""
from . import params as P
from .manifest import OptionValueError, convert_option
from .params import OPT, REQ, RpcFail


def _plugin_list(node, command):
    return {"command": command, "plugins": [
        {"name": h.path, "active": h.state == "active", "dynamic": bool((h.manifest or {}).get("dynamic", False))}
        for h in node.hosts if h.state in ("init", "active")]}


def plugin(node, params):
    a = P.parse(params, ("subcommand", REQ, P.string), ("plugin", OPT, P.string), ("options", OPT, P.anything),
                allow_extra=True)
    sub = a["subcommand"]
    if sub == "list":
        return _plugin_list(node, "list")
    if sub == "start":
        if a["plugin"] is None:
            raise RpcFail(P.INVALID_PARAMS, "missing required parameter: plugin")
        opts = dict(a["__extra__"])
        for kv in a["options"] or []:
            k, _, v = str(kv).partition("=")
            opts[k] = v if _ else True
        node.start_plugin(a["plugin"], opts)
        return _plugin_list(node, "start")
    if sub == "stop":
        if a["plugin"] is None:
            raise RpcFail(P.INVALID_PARAMS, "missing required parameter: plugin")
        name = node.stop_plugin(a["plugin"])
        return {"command": "stop", "result": "Successfully stopped %s." % name}
    if sub in ("rescan", "startdir"):
        raise RpcFail(P.INVALID_PARAMS, "subcommand %s is not supported by the stand-in" % sub)
    raise RpcFail(P.INVALID_PARAMS, "subcommand: should be one of: start, stop, startdir, rescan, list: invalid token '%s'" % sub)


def _config_entry(node, host, opt, value, source):
    entry = {"source": source, "plugin": host.path, "dynamic": bool(opt.get("dynamic"))}
    typ = opt["type"]
    if opt.get("multi"):
        entry["values_" + ("int" if typ == "int" else "str")] = value
    elif typ == "int":
        entry["value_int"] = value
    elif typ == "bool":
        entry["value_bool"] = value
    elif typ == "flag":
        entry["set"] = bool(value)
    else:
        entry["value_str"] = value
    return entry


def listconfigs(node, params):
    a = P.parse(params, ("config", OPT, P.string))
    configs = {"network": {"source": "cmdline", "value_str": "regtest"},
               "lightning-dir": {"source": "cmdline", "value_str": node.lightning_dir},
               "alias": {"source": "default", "value_str": node.alias}}
    for h in node.hosts:
        if h.state not in ("init", "active"):
            continue
        for o in h.manifest.get("options", []):
            if o["name"] in h.dynamic_values:
                configs[o["name"]] = _config_entry(node, h, o, h.dynamic_values[o["name"]], "setconfig")
            elif o["name"] in h.init_options:
                src = "cmdline" if o["name"] in node.options else "default"
                configs[o["name"]] = _config_entry(node, h, o, h.init_options[o["name"]], src)
    if a["config"] is not None:
        if a["config"] not in configs:
            raise RpcFail(P.INVALID_PARAMS, "Unknown config option %s" % a["config"])
        configs = {a["config"]: configs[a["config"]]}
    return {"configs": configs}


def setconfig(node, params):
    a = P.parse(params, ("config", REQ, P.string), ("val", OPT, P.anything), ("transient", OPT, P.boolean, False))
    name, val = a["config"], a["val"]
    for h in node.hosts:
        if h.state != "active":
            continue
        opt = next((o for o in h.manifest.get("options", []) if o["name"] == name), None)
        if opt is None:
            continue
        if not opt.get("dynamic"):
            raise RpcFail(P.INVALID_PARAMS, "config: %s is not a dynamic option" % name)
        if opt["type"] == "flag":
            if val is not None:
                raise RpcFail(P.INVALID_PARAMS, "val: %s does not take a value" % name)
            typed, sent = True, None
        else:
            if val is None:
                raise RpcFail(P.INVALID_PARAMS, "missing required parameter: val")
            sval = val if isinstance(val, str) else ("true" if val is True else "false" if val is False else str(val))
            try:
                typed = convert_option(opt, sval)
            except OptionValueError as e:
                raise RpcFail(P.INVALID_PARAMS, "val: %s" % e)
            sent = sval  # setconfig's val is always a string (plugin.c:2344-2360)
        return node.plugin_setconfig(h, opt, typed, sent)
    raise RpcFail(P.INVALID_PARAMS, "config: Unknown config option %s" % name)


METHODS = {"plugin": plugin, "listconfigs": listconfigs, "setconfig": setconfig}
