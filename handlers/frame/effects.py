"""The one door through which handlers reach lightningd: `call(method, params)`.

In lightningd it is `ThreadLocalRpc` over the real `lightning-rpc` socket; the fleet
stand-in serves that same socket, so handlers run unchanged in tests.
"""
from __future__ import annotations

import threading
from typing import Protocol

from pyln.client import LightningRpc


class Lightning(Protocol):
    def call(self, method: str, params: dict | None = None) -> dict: ...


class ThreadLocalRpc:
    """pyln's LightningRpc is not thread-safe (shared id counter and cmdprefix), so each
    thread gets its own client on the same socket."""

    def __init__(self, socket_path: str):
        self.socket_path = socket_path
        self._local = threading.local()

    def call(self, method: str, params: dict | None = None) -> dict:
        rpc = getattr(self._local, "rpc", None)
        if rpc is None:
            rpc = self._local.rpc = LightningRpc(self.socket_path)
        return rpc.call(method, params or {})
