"""getmanifest latency: from lightningd starting the plugin process to its getmanifest
answer (what every lightningd start and `plugin start` waits for), cl-hive's plugin.py
against the smallest pyln plugin (bench/bare_plugin.py), alternating, best of ROUNDS.

Prints figures; asserts nothing. Run: `python -m bench.manifest`.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OURS, BARE = ROOT / "plugin.py", Path(__file__).with_name("bare_plugin.py")
ROUNDS = 7
# What lightningd sets for its plugins (pyln checks the first).
ENV = {"LIGHTNINGD_PLUGIN": "1", "LIGHTNINGD_VERSION": "v26.06.6"}
REQUEST = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "getmanifest",
                      "params": {"allow-deprecated-apis": False}}) + "\n\n"


def once(path: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT,
                            env={**os.environ, **ENV})
    try:
        proc.stdin.write(REQUEST.encode())
        proc.stdin.flush()
        buf = ""
        while True:
            chunk = proc.stdout.read1(65536)
            if not chunk:
                raise RuntimeError(f"{path.name} exited before answering getmanifest")
            buf += chunk.decode()
            try:
                answer, _ = json.JSONDecoder().raw_decode(buf.lstrip())
            except ValueError:
                continue        # not whole yet
            took = time.perf_counter() - t0
            if "result" not in answer:
                raise RuntimeError(f"{path.name} answered getmanifest with an error")
            return took
    finally:
        proc.kill()
        proc.wait()


def measure() -> dict:
    ours, bare = [], []
    for _ in range(ROUNDS):
        ours.append(once(OURS))
        bare.append(once(BARE))
    return {"ours": min(ours), "bare": min(bare)}


def main() -> None:
    r = measure()
    print(f"getmanifest latency (process start to answer), best of {ROUNDS}")
    print(f"  cl-hive plugin.py : {r['ours'] * 1e3:7.1f} ms")
    print(f"  bare pyln plugin  : {r['bare'] * 1e3:7.1f} ms")
    print(f"  ratio cl-hive/bare: {r['ours'] / r['bare']:7.2f}x")


if __name__ == "__main__":
    main()
