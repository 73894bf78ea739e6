"""Writes minimal non-pyln plugin scripts with a fixed manifest, to test what lightningd rejects."""
import json
import os

_TEMPLATE = '''#!/usr/bin/env python3
# A raw plugin: answers getmanifest/init with fixed results and {} to anything else.
import json
import sys

MANIFEST = json.loads(%r)
INIT = json.loads(%r)
RESPONSES = json.loads(%r)
buf = b""
for line in sys.stdin.buffer:
    buf += line
    while b"\\n\\n" in buf:
        raw, buf = buf.split(b"\\n\\n", 1)
        req = json.loads(raw)
        if "id" not in req:
            continue
        res = MANIFEST if req["method"] == "getmanifest" else INIT if req["method"] == "init" else \\
            RESPONSES.get(req["method"], {})
        sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": res}) + "\\n\\n")
        sys.stdout.flush()
'''

BASE_MANIFEST = {"options": [], "rpcmethods": [{"name": "raw-hello", "usage": "", "description": "hi"}],
                 "subscriptions": [], "hooks": [], "dynamic": True, "nonnumericids": True}


def write_raw_plugin(directory, name, manifest=None, init_result=None, responses=None, **overrides):
    """`manifest` replaces the base manifest; `overrides` patch keys of it (None deletes);
    `responses` maps other methods (hooks included) to their result (default {})."""
    m = dict(BASE_MANIFEST if manifest is None else manifest)
    for k, v in overrides.items():
        if v is None:
            m.pop(k, None)
        else:
            m[k] = v
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(_TEMPLATE % (json.dumps(m), json.dumps(init_result), json.dumps(responses or {})))
    os.chmod(path, 0o755)   # lightningd executes plugin files
    return path
