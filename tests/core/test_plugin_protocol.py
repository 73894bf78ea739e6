"""plugin.py as lightningd runs it: a subprocess with LIGHTNINGD_PLUGIN=1, spoken to with
"\\n\\n"-framed compact JSON on stdin, answering on stdout. The manifest is checked with
the stand-in's copy of lightningd's manifest rules."""
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from handlers.frame import logline
from handlers.wire.framing import KNOWN_TYPES
from storage.migrations import LATEST
from tests.core.db_damage import filled_database, newer_schema, scribble_header, scribble_mid_file
from tests.standin.jsonstream import JSONStream
from tests.standin.manifest import build_init_options, validate_manifest

PLUGIN = Path(__file__).resolve().parents[2] / "plugin.py"
LEVELS = {"trace", "debug", "info", "unusual", "broken", "warn", "error"}


class PluginProcess:
    def __init__(self, lightning_dir: Path):
        self.dir = lightning_dir
        env = dict(os.environ, LIGHTNINGD_PLUGIN="1", LIGHTNINGD_VERSION="v26.06.6")
        self.proc = subprocess.Popen([sys.executable, str(PLUGIN)], cwd=lightning_dir, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.messages: queue.Queue = queue.Queue()
        self.logs: list[dict] = []
        self.non_jsonrpc: list = []
        self._n = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        stream = JSONStream()
        for chunk in iter(lambda: self.proc.stdout.read1(65536), b""):
            for obj in stream.feed(chunk):
                if not isinstance(obj, dict) or obj.get("jsonrpc") != "2.0":
                    self.non_jsonrpc.append(obj)
                elif obj.get("method") == "log":
                    self.logs.append(obj["params"])
                else:
                    self.messages.put(obj)

    def send(self, obj):
        self.proc.stdin.write(json.dumps(obj, separators=(",", ":")).encode() + b"\n\n")
        self.proc.stdin.flush()

    def request(self, method, params, timeout=10):
        self._n += 1
        rid = f"cli:{method}#{self._n}/cln:{method}#{self._n + 100}"
        self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        deadline = time.monotonic() + timeout
        while True:
            msg = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            if msg.get("id") == rid:
                return msg

    def start(self, options=None):
        manifest = self.request("getmanifest", {"allow-deprecated-apis": False})["result"]
        validate_manifest(manifest)
        init_options = build_init_options(manifest["options"], options or {})
        reply = self.request("init", {"options": init_options, "configuration": {
            "lightning-dir": str(self.dir), "rpc-file": "lightning-rpc", "startup": True,
            "network": "regtest"}})
        return manifest, reply

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)


@pytest.fixture
def plugin(tmp_path):
    p = PluginProcess(tmp_path)
    yield p
    p.close()
    assert p.non_jsonrpc == [], "plugin wrote output lightningd would kill it for"
    assert all(entry["level"] in LEVELS for entry in p.logs)
    broken = [e for e in p.logs if e["level"] in ("error", "broken")]
    assert broken == [], "plugin logged at error level (BROKEN in lightningd)"


def test_manifest_is_one_lightningd_accepts(plugin):
    manifest, reply = plugin.start()
    assert reply["result"] is None
    assert {o["name"] for o in manifest["options"]} >= {
        "hive-db-path", "hive-governance-mode", "hive-heartbeat-interval",
        "hive-gossip-capacity-threshold-pct", "hive-intent-hold-seconds",
        "hive-intent-expire-seconds", "hive-ticket-valid-hours", "hive-max-members"}
    # only our own message types reach us, and no hook delays a peer's connection
    assert manifest["hooks"] == [{"name": "custommsg", "before": [], "after": [],
                                  "filters": sorted(KNOWN_TYPES)}]
    assert set(manifest["subscriptions"]) == {"connect", "disconnect", "forward_event",
                                              "shutdown", "channel_opened",
                                              "channel_state_changed"}
    methods = {m["name"]: m["usage"] for m in manifest["rpcmethods"]}
    assert methods["hive-diagram"].split("\n")[0].strip() == "machine" and "hive-status" in methods


def test_status_after_init_creates_the_database(plugin, tmp_path):
    plugin.start()
    status = plugin.request("hive-status", {})["result"]
    assert status["db_path"] == str(tmp_path / "cl-hive.db")
    assert status["governance_mode"] == "advisor"
    assert status["version"] and status["schema_version"] >= 2
    assert set(status["machines"]) == {"handshake_joiner", "handshake_admin", "member_tier",
                                       "intent_lock", "pending_action", "circuit_breaker",
                                       "contribution_throttle"}
    assert (tmp_path / "cl-hive.db").exists()
    started = [e for e in plugin.logs if e["message"].startswith("hive.started ")]
    assert started and started[0]["level"] == "info"
    assert logline.parse(started[0]["message"])[1]["governance_mode"] == "advisor"


@pytest.mark.parametrize("options,reason", [
    ({"hive-heartbeat-interval": 5},
     "hive-heartbeat-interval: 5 is out of range: expected an integer from 60 to 3600"),
    ({"hive-governance-mode": "dictator"},
     "hive-governance-mode: 'dictator' is not allowed: expected one of "
     "advisor|autonomous|oracle"),
    ({"hive-intent-hold-seconds": 300, "hive-intent-expire-seconds": 200},
     "hive-intent-expire-seconds: 200 must exceed hive-intent-hold-seconds (300)"),
    ({"hive-db-path": "/nonexistent-dir/h.db"},
     "hive-db-path: directory /nonexistent-dir does not exist"),
])
def test_a_bad_option_disables_the_plugin_with_a_clear_reason(plugin, options, reason):
    _, reply = plugin.start(options)
    assert reply["result"] == {"disable": reason}


@pytest.mark.parametrize("damage,reason", [
    (scribble_mid_file, r"is damaged \(integrity_check found: \*\*\* in database main"),
    (scribble_header, r"is damaged \(integrity_check failed: file is not a database\)"),
])
def test_a_damaged_database_disables_the_plugin_saying_what_to_do(plugin, tmp_path, damage,
                                                                 reason):
    path = tmp_path / "cl-hive.db"
    filled_database(str(path))
    damage(str(path))
    before = path.read_bytes()
    _, reply = plugin.start()
    disable = reply["result"]["disable"]
    assert disable.startswith(f"hive-db-path: {path} is damaged")
    assert re.search(reason, disable)
    assert "restore a backup or start with a fresh hive-db-path" in disable
    assert path.read_bytes() == before, "never repaired silently"
    assert not any("Traceback" in e["message"] for e in plugin.logs)


def test_a_database_from_a_newer_release_disables_the_plugin(plugin, tmp_path):
    path = tmp_path / "cl-hive.db"
    newer_schema(str(path))
    _, reply = plugin.start()
    assert reply["result"]["disable"] == (
        f"hive-db-path: cannot use {path}: {path} has schema version {LATEST + 1}; this "
        f"cl-hive knows up to {LATEST}. Install the newer cl-hive that wrote it, or point "
        "hive-db-path at a backup made by this version.")


def test_setconfig_refuses_bad_values_and_keeps_the_old_one(plugin):
    plugin.start()
    err = plugin.request("setconfig", {"config": "hive-governance-mode", "val": "dictator"})
    assert err["error"]["code"] == -32602
    assert err["error"]["message"].startswith("hive-governance-mode: 'dictator' is not allowed")
    assert plugin.request("hive-status", {})["result"]["governance_mode"] == "advisor"
    ok = plugin.request("setconfig", {"config": "hive-governance-mode", "val": "autonomous"})
    assert "error" not in ok
    assert plugin.request("hive-status", {})["result"]["governance_mode"] == "autonomous"
    err = plugin.request("setconfig", {"config": "hive-intent-expire-seconds", "val": "10"})
    assert "must exceed hive-intent-hold-seconds" in err["error"]["message"]


def test_hive_diagram_names_a_bad_parameter(plugin):
    plugin.start()
    ok = plugin.request("hive-diagram", {"machine": "intent_lock"})["result"]
    assert ok["mermaid"].splitlines()[3] == "stateDiagram-v2"
    err = plugin.request("hive-diagram", {"machine": "toaster"})["error"]
    assert err["code"] == -32602 and err["message"].startswith("machine: unknown machine")


@pytest.mark.parametrize("payload", [
    "", "zz", "0001", "80014849564",                        # junk and truncation
    "8001" + b"HIVE".hex() + "7b7d",                           # ours: ignored for now
    "8003" + b"NOPE".hex() + "00" * 10,                        # another plugin's message
    "8001" + b"HIVE".hex() + "ff" * 70000,                     # oversize
])
def test_custommsg_hook_always_answers_continue(plugin, payload):
    plugin.start()
    reply = plugin.request("custommsg", {"peer_id": "02" + "11" * 32, "payload": payload})
    assert reply["result"] == {"result": "continue"}
    assert plugin.request("hive-status", {})["result"]["version"]


def test_a_fault_in_the_custommsg_hook_still_answers_continue_and_is_logged(plugin):
    # The hook is answered directly, not through pyln's dispatch: its fallback must hold.
    plugin.start()
    reply = plugin.request("custommsg", {"peer_id": "02" + "11" * 32})     # no payload
    assert reply["result"] == {"result": "continue"}
    assert plugin.request("hive-status", {})["result"]["version"]
    failed = [e for e in plugin.logs if e["message"].startswith("hook.failed ")]
    assert [e["level"] for e in failed] == ["error"] and "KeyError" in failed[0]["message"]
    plugin.logs[:] = [e for e in plugin.logs if e not in failed]    # the one fault expected


# Each ends the process cleanly by itself, well inside the seconds lightningd waits before
# it kills a plugin; how fast is a figure, not asserted (a busy machine stretches it).
def test_shutdown_notification_ends_the_process(plugin):
    plugin.start()
    plugin.send({"jsonrpc": "2.0", "method": "shutdown", "params": {"shutdown": {}}})
    assert plugin.proc.wait(timeout=5) == 0


def test_sigterm_ends_the_process(plugin):
    plugin.start()
    plugin.request("hive-status", {})
    plugin.proc.send_signal(signal.SIGTERM)
    assert plugin.proc.wait(timeout=5) == 0


def test_outside_lightningd_it_prints_usage_and_exits_0(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "LIGHTNINGD_PLUGIN"}
    out = subprocess.run([sys.executable, str(PLUGIN)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    assert "hive-status" in out.stdout and "--hive-governance-mode" in out.stdout


def test_importing_plugin_py_has_no_side_effects():
    code = ("import logging, sys; before = list(logging.getLogger().handlers); "
            "import plugin; "
            "assert logging.getLogger().handlers == before; "
            "assert not hasattr(plugin, 'plugin')")
    out = subprocess.run([sys.executable, "-c", code], cwd=PLUGIN.parent, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""


def test_bad_parameters_and_faults_reach_lightningd_without_a_traceback(plugin):
    plugin.start()
    assert plugin.request("hive-vouch", {})["error"] == {
        "code": -32602, "message": "peer_id: missing required parameter"}
    assert plugin.request("hive-status", ["extra"])["error"]["code"] == -32602
    # No lightningd behind this plugin: genesis cannot sign, and says so with a code.
    err = plugin.request("hive-genesis", {})["error"]
    assert err["code"] == 4480 and err["message"].startswith("hive-genesis: ")
    assert set(err) == {"code", "message"}
