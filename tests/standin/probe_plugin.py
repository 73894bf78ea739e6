#!/usr/bin/env python3
"""A tiny real pyln plugin for the stand-in's own tests: records what lightningd sends it
and can be told to misbehave. It never prints (pyln owns stdout)."""
import os
import time

from pyln.client import Plugin, RpcException

plugin = Plugin(custom_msgs=[0x8002])
received = {"custommsg_hook": [], "custommsg": [], "connect": [], "disconnect": [], "peer_connected": [],
            "forward_event": [], "channel_opened": [], "init": None}
behaviour = {"custommsg": "continue", "peer_connected": "continue"}
plugin.add_option("probe-name", "probe", "a string option")
plugin.add_option("probe-int", 7, "an int option", opt_type="int")
plugin.add_option("probe-bool", False, "a bool option", opt_type="bool")
plugin.add_flag_option("probe-flag", "a flag option")
plugin.add_option("probe-nodefault", None, "a string option without default")
plugin.add_option("probe-disable", None, "if set, init answers {disable: <value>}")
plugin.add_option("probe-shutdown-delay", "0", "seconds to wait in the shutdown handler")


def _check_dyn(plugin, name, value):
    if value == "bad":
        raise RpcException("probe-dyn refuses 'bad'")


plugin.add_option("probe-dyn", "initial", "a dynamic option", dynamic=True, on_change=_check_dyn)


@plugin.init()
def init(options, configuration, plugin, **kwargs):
    received["init"] = {"options": options, "configuration": configuration}
    if plugin.get_option("probe-disable"):
        return {"disable": plugin.get_option("probe-disable")}
    plugin.log("probe initialised")


@plugin.method("probe-received")
def probe_received(plugin):
    """What this plugin has received so far."""
    return received


@plugin.method("probe-set")
def probe_set(plugin, what, mode):
    """Set how a hook answers: custommsg continue|other|noresult|raise; peer_connected continue|disconnect|bad."""
    behaviour[what] = mode
    return behaviour


@plugin.method("probe-echo")
def probe_echo(plugin, request, *args, **kwargs):
    """Return the id lightningd used and the params."""
    return {"id": request.id, "params": list(args) if args else kwargs, "dyn": plugin.get_option("probe-dyn")}


@plugin.method("probe-call")
def probe_call(plugin, method, params=None):
    """Call lightningd's RPC from inside the plugin."""
    return plugin.rpc.call(method, params or {})


@plugin.method("probe-log")
def probe_log(plugin, message, level="info"):
    plugin.log(message, level=level)
    return {}


@plugin.method("probe-write-raw")
def probe_write_raw(plugin, text):
    """Write raw bytes to stdout, bypassing pyln's framing."""
    with plugin.write_lock:
        plugin.stdout.buffer.write(text.encode())
        plugin.stdout.flush()
    return {}


@plugin.method("probe-file")
def probe_file(plugin, name, content=None):
    """Write (if content given) then read a file in the plugin's cwd."""
    if content is not None:
        with open(name, "w") as f:
            f.write(content)
    with open(name) as f:
        return {"cwd": os.getcwd(), "content": f.read()}


@plugin.method("probe-exit")
def probe_exit(plugin, code=3):
    os._exit(int(code))


@plugin.async_method("probe-hang")
def probe_hang(plugin, request):
    """Never answers."""


@plugin.method("probe-progress")
def probe_progress(plugin, request):
    plugin.notify_message(request, "working")
    return {"done": True}


@plugin.async_hook("custommsg")
def on_custommsg_hook(peer_id, payload, plugin, request, **kwargs):
    received["custommsg_hook"].append({"peer_id": peer_id, "payload": payload, "id": request.id})
    mode = behaviour["custommsg"]
    if mode == "noresult":
        request.set_exception(RpcException("probe told to answer without result"))
    elif mode == "other":
        request.set_result({"result": "stop"})
    elif mode == "raise":
        # pyln answers continue and logs at level error (BROKEN).
        request.set_result({"result": "continue"})
        plugin.log("Hook handler for custommsg failed", level="error")
    else:
        request.set_result({"result": "continue"})


@plugin.hook("peer_connected")
def on_peer_connected(peer, plugin, **kwargs):
    received["peer_connected"].append(peer)
    mode = behaviour["peer_connected"]
    if mode == "disconnect":
        return {"result": "disconnect", "error_message": "probe says no"}
    if mode == "bad":
        return {"result": "maybe"}
    return {"result": "continue"}


@plugin.subscribe("custommsg")
def on_custommsg(plugin, **kwargs):
    received["custommsg"].append(kwargs["custommsg"])


@plugin.subscribe("connect")
def on_connect(plugin, connect, **kwargs):
    received["connect"].append(connect)


@plugin.subscribe("disconnect")
def on_disconnect(plugin, disconnect, **kwargs):
    received["disconnect"].append(disconnect)


@plugin.subscribe("forward_event")
def on_forward(plugin, forward_event, **kwargs):
    received["forward_event"].append(forward_event)


@plugin.subscribe("channel_opened")
def on_channel_opened(plugin, channel_opened, **kwargs):
    received["channel_opened"].append(channel_opened)


@plugin.subscribe("shutdown")
def on_shutdown(plugin, **kwargs):
    time.sleep(float(plugin.get_option("probe-shutdown-delay")))
    plugin.log("probe shutting down")
    raise SystemExit(0)


if __name__ == "__main__":
    plugin.run()
