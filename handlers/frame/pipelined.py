"""Many calls to lightningd on one connection: every request written at once, each answer
matched to its request by id, in whatever order lightningd sends them (it runs the
commands of one connection side by side, lightningd/jsonrpc.c). A burst of signature
checks then costs one connection and one round trip, not a socket and a round trip each
(pyln's client opens a socket per call)."""
from __future__ import annotations

import json
import selectors

from pyln.client import RpcError
from pyln.client.lightning import UnixSocket

READ_CHUNK = 65536


def call_many(socket_path: str, method: str, params_list: list[dict], timeout: float | None,
              on_timeout) -> list:
    """For each params, lightningd's result (a dict) or the RpcError it answered.
    `timeout`: seconds without progress before the calls left unanswered fail with
    `on_timeout(params)` (an RpcError); None waits for ever. Raises OSError when the
    connection itself fails (nothing answered is lost: the caller may ask again)."""
    ids = {f"cl-hive:{method}#{i}": i for i in range(len(params_list))}
    out = "".join(json.dumps({"jsonrpc": "2.0", "id": key, "method": method,
                              "params": params_list[i]}, ensure_ascii=False)
                  for key, i in ids.items()).encode("utf-8")
    answers: list = [None] * len(params_list)
    left, buf, sent = len(params_list), b"", 0
    conn = UnixSocket(socket_path)      # pyln's: it reaches a socket path too long for AF_UNIX
    sock = conn.sock
    try:
        sock.setblocking(False)
        with selectors.DefaultSelector() as sel:
            # Written and read together: lightningd may stop reading until its answers
            # are read, and the requests of a burst may not fit in the socket's buffer.
            sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
            while left:
                if not sel.select(timeout):
                    for i, a in enumerate(answers):
                        if a is None:
                            answers[i] = on_timeout(params_list[i])
                    break
                if sent < len(out):
                    try:
                        sent += sock.send(out[sent:sent + READ_CHUNK])
                    except BlockingIOError:
                        pass
                    if sent == len(out):
                        sel.modify(sock, selectors.EVENT_READ)
                try:
                    data = sock.recv(READ_CHUNK)
                except BlockingIOError:
                    continue
                if not data:
                    raise ConnectionResetError("lightningd closed the connection")
                *whole, buf = (buf + data).split(b"\n\n")
                for raw in whole:
                    if not raw.strip():
                        continue
                    try:
                        msg = json.loads(raw)
                    except ValueError as e:
                        raise ConnectionError(f"lightningd answered with bad JSON: {e}") from None
                    key = msg.get("id") if isinstance(msg, dict) else None
                    i = ids.get(key) if isinstance(key, str) else None
                    if i is None or answers[i] is not None:
                        continue        # a notification, or not ours
                    left -= 1
                    answers[i] = msg["result"] if "result" in msg else \
                        RpcError(method, params_list[i], msg.get("error"))
    finally:
        conn.close()
    return answers
