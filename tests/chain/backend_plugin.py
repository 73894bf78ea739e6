#!/usr/bin/env python3
"""A Bitcoin backend plugin for lightningd, in place of bcli: it answers lightningd's five
backend calls (getchaininfo, estimatefees, getrawblockbyheight, getutxout,
sendrawtransaction) by asking the test's chain server (tests/chain/server.py) at
127.0.0.1:<bitcoin-rpcport>. Start lightningd with
`--disable-plugin=bcli --plugin=<this file> --bitcoin-rpcport=<chain server port>`.

Standard library only, so any python3 lightningd finds can run it."""
import codecs
import json
import os
import socket
import sys
import time

METHODS = ("getchaininfo", "estimatefees", "getrawblockbyheight", "getutxout", "sendrawtransaction")
# bcli's options: pyln-testing passes the first four to every node; only the port is used.
OPTIONS = ("bitcoin-rpcport", "bitcoin-rpcuser", "bitcoin-rpcpassword", "bitcoin-datadir",
           "bitcoin-rpcconnect")
CONNECT_TRIES = 50          # x 0.1 s: the chain server is up before any node starts


class Chain:
    def __init__(self, host, port):
        self.addr = (host, port)
        self.sock = self.rfile = None

    def call(self, method, params):
        for attempt in range(2):        # one reconnect if the connection dropped
            try:
                if self.sock is None:
                    self._connect()
                self.sock.sendall(json.dumps({"method": method, "params": params}).encode() + b"\n")
                line = self.rfile.readline()
                if line:
                    return json.loads(line)
            except OSError:
                if attempt:
                    raise
            self.sock = None
        raise ConnectionError("chain server at %s:%d closed the connection" % self.addr)

    def _connect(self):
        for i in range(CONNECT_TRIES):
            try:
                self.sock = socket.create_connection(self.addr)
                self.rfile = self.sock.makefile("rb")
                return
            except OSError:
                if i == CONNECT_TRIES - 1:
                    raise
                time.sleep(0.1)


def manifest():
    return {"options": [{"name": o, "type": "string", "description": "as bcli's; only the port is used"}
                        for o in OPTIONS],
            "rpcmethods": [{"name": m, "usage": "", "description": "Bitcoin backend: " + m} for m in METHODS],
            "dynamic": False}


def messages(stream):
    """JSON objects from lightningd, however they are split across reads."""
    decoder, utf8, buf = json.JSONDecoder(), codecs.getincrementaldecoder("utf-8")(), ""
    while True:
        chunk = os.read(stream.fileno(), 65536)
        if not chunk:
            return
        buf += utf8.decode(chunk)
        while True:
            buf = buf.lstrip()
            if not buf:
                break
            try:
                obj, end = decoder.raw_decode(buf)
            except ValueError:
                break                    # incomplete: read more
            buf = buf[end:]
            yield obj


def reply(req, result=None, error=None):
    if "id" not in req:
        return                           # a notification
    msg = {"jsonrpc": "2.0", "id": req["id"]}
    if error is not None:
        msg["error"] = {"code": -1, "message": error}
    else:
        msg["result"] = result
    sys.stdout.write(json.dumps(msg) + "\n\n")
    sys.stdout.flush()


def main():
    chain = None
    for req in messages(sys.stdin):
        method, params = req.get("method"), req.get("params") or {}
        if method == "getmanifest":
            reply(req, manifest())
        elif method == "init":
            port = params.get("options", {}).get("bitcoin-rpcport")
            if port is None:
                reply(req, {"disable": "bitcoin-rpcport (the chain server's port) is not set"})
                continue
            chain = Chain(params["options"].get("bitcoin-rpcconnect") or "127.0.0.1", int(port))
            reply(req, {})
        elif method in METHODS and chain is not None:
            if isinstance(params, list):
                params = dict(zip(("height",) if method == "getrawblockbyheight" else (), params))
            try:
                answer = chain.call(method, params)
            except (OSError, ValueError) as e:
                reply(req, error="chain server: %s" % e)
                continue
            reply(req, answer.get("result"), answer.get("error"))
        else:
            reply(req, error="unknown method %s" % method)


if __name__ == "__main__":
    main()
