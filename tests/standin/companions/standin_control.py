"""Shared by the companion stand-ins: record every call, and misbehave on demand.

Modes, for every method or one `method`: ok; fail (a JSON-RPC error `code`/`message`);
hang (never answer); die (exit mid-call: lightningd answers -4 to the caller); slow
(answer after `delay` seconds); garbage (answer a result that is not the method's shape).

Imported by plugin scripts in this folder (a script's folder is on its sys.path)."""
import functools
import inspect
import os
import threading
import time

from pyln.client import RpcException

MODES = ("ok", "fail", "hang", "die", "slow", "garbage")
GARBAGE = "\u00ff not json-rpc you expected \u00ff"


class Control:
    def __init__(self, plugin, prefix):
        self.plugin = plugin
        self.calls = []
        self.mode = "ok"
        self.per_method = {}
        self.delay = 2.0
        self.fail = {"code": -32600, "message": "%s stand-in told to fail" % prefix}
        plugin.add_method(prefix + "-standin-mode", self._set_mode)
        plugin.add_method(prefix + "-standin-calls", self._calls)

    def _set_mode(self, mode, method=None, code=None, message=None, delay=None):
        """Set mode ok|fail|hang|die|slow|garbage for every method, or only `method`;
        fail uses code/message, slow waits `delay` seconds."""
        if mode not in MODES:
            raise RpcException("mode must be one of %s" % ", ".join(MODES), -32602)
        if method:
            self.per_method[method] = mode
        else:
            self.mode, self.per_method = mode, {}
        if code is not None:
            self.fail["code"] = int(code)
        if message is not None:
            self.fail["message"] = message
        if delay is not None:
            self.delay = float(delay)
        return {"mode": self.mode, "per_method": self.per_method}

    def _calls(self, method=None):
        """Calls received so far (optionally only those of `method`)."""
        return {"calls": [c for c in self.calls if method in (None, c["method"])]}

    def _answer(self, request, fn, args, kwargs):
        from clboss_model import ModelError
        try:
            request.set_result(fn(*args, **kwargs))
        except ModelError as e:
            request.set_exception(RpcException(e.message, e.code))
        except RpcException as e:
            request.set_exception(e)

    def method(self, name):
        """Register fn(plugin, request, ...) as an RPC method that obeys the mode."""
        def deco(fn):
            @functools.wraps(fn)
            def handler(*args, **kwargs):
                request = inspect.signature(fn).bind(*args, **kwargs).arguments["request"]
                params = request.params
                if isinstance(params, dict):  # pyln injects plugin/request into the dict it binds
                    params = {k: v for k, v in params.items() if k not in ("plugin", "request")}
                self.calls.append({"method": name, "params": params, "id": request.id, "time": time.time()})
                mode = self.per_method.get(name, self.mode)
                if mode == "hang":
                    return  # never answered: the caller waits until we die
                if mode == "die":
                    self.plugin.log("told to die during %s" % name, level="info")
                    os._exit(1)
                if mode == "fail":
                    request.set_exception(RpcException(self.fail["message"], self.fail["code"]))
                    return
                if mode == "garbage":
                    request.set_result(GARBAGE)
                    return
                if mode == "slow":
                    # Answered from a timer, so the plugin keeps serving other calls meanwhile.
                    threading.Timer(self.delay, self._answer, (request, fn, args, kwargs)).start()
                    return
                self._answer(request, fn, args, kwargs)
            self.plugin.add_method(name, handler, background=True)
            return fn
        return deco
