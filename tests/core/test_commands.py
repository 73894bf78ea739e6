"""Every `hive-*` command the CLN way, through plugin.py's real dispatch (pyln's Plugin, our
HivePlugin) on a real Hive (SQLite, worker, reader) with lightningd's signing computed as
lightningd does: a usage for `lightning-cli help`, -32602 naming each bad parameter, each
refusal its code from docs/ERRORS.md, a fault answered with a code and no traceback,
whole-second times, and the same shapes in a hive or not."""
import json
import queue

import pytest
from pyln.client.plugin import Request
from structlog.testing import capture_logs

import plugin as plugin_module
from handlers.frame import config as cfg
from handlers.frame import errors
from handlers.hive import Hive
from tests.core.hive_sides import KeyOnlyLightning

T1, T2 = "02" + "11" * 32, "02" + "22" * 32


class Replies:
    """lightningd's end of the plugin's stdout: each reply, by request id."""

    def __init__(self):
        self.buffer = self
        self.q: queue.Queue = queue.Queue()

    def write(self, data: bytes) -> None:
        for part in data.decode().split("\n\n"):
            if part.strip():
                self.q.put(json.loads(part))

    def flush(self) -> None:
        pass


class Lightningd(KeyOnlyLightning):
    """Signing as lightningd does, and a `plugin list` without companions."""

    def call(self, method, params=None):
        if method == "plugin":
            return {"command": "list", "plugins": []}
        return super().call(method, params)


class Node:
    def __init__(self, tmp_path, clock):
        self.hive = Hive(clock=clock)
        self.hive.start(cfg.from_init({}, str(tmp_path)), Lightningd(str(tmp_path)))
        self.plugin = plugin_module.build(self.hive)
        self.replies = Replies()
        self.plugin.stdout = self.replies
        self.n = 0

    def reply(self, method, params=None) -> dict:
        self.n += 1
        self.plugin._dispatch_request(Request(self.plugin, str(self.n), method,
                                              {} if params is None else params))
        reply = self.replies.q.get(timeout=10)
        assert reply["id"] == str(self.n)
        return reply

    def call(self, method, params=None) -> dict:
        reply = self.reply(method, params)
        assert "error" not in reply, reply
        return reply["result"]

    def error(self, method, params=None) -> dict:
        reply = self.reply(method, params)
        assert "result" not in reply, reply
        return reply["error"]

    @property
    def commands(self) -> dict:
        return {name: m for name, m in self.plugin.methods.items() if name.startswith("hive-")}


@pytest.fixture
def node(tmp_path, clock):
    n = Node(tmp_path, clock)
    yield n
    n.hive.stop()


def test_every_command_has_a_usage_with_its_parameters_and_what_it_does(node):
    manifest = node.plugin._getmanifest()
    usages = {m["name"]: m["usage"] for m in manifest["rpcmethods"]}
    assert set(usages) == set(node.commands) and len(usages) >= 23
    for name, method in node.commands.items():
        params, _, doc = usages[name].partition("\n")
        wanted = [p for p in method.func.__code__.co_varnames[:method.func.__code__.co_argcount]
                  if p not in ("plugin", "request")]
        assert params.split() == [p if i < len(wanted) - len(method.func.__defaults__ or ())
                                  else f"[{p}]" for i, p in enumerate(wanted)], name
        assert doc.strip(), f"{name} has no description in its usage"


def test_every_unknown_or_missing_parameter_is_named_with_32602(node):
    for name, method in node.commands.items():
        err = node.error(name, {"no_such_param": 1})
        assert (err["code"], err["message"]) == (-32602, "no_such_param: unknown parameter")
        assert "traceback" not in err
        code = method.func.__code__
        wanted = [p for p in code.co_varnames[:code.co_argcount] if p not in ("plugin", "request")]
        required = wanted[:len(wanted) - len(method.func.__defaults__ or ())]
        for missing in required:
            params = {p: "x" for p in required if p != missing}
            err = node.error(name, params)
            assert err == {"code": -32602, "message": f"{missing}: missing required parameter"}
        err = node.error(name, ["x"] * (len(wanted) + 1))
        assert err["code"] == -32602 and err["message"].startswith("params: "), name


# (command, params, the code) on a node in no hive, then on a hive's admin. Every
# refusal an operator can meet on one node; hive-join's are in test_fleet_join_refused.
OUTSIDE = [
    ("hive-invite", {}, errors.NOT_IN_HIVE),
    ("hive-intent", {"type": "channel_open", "target": T1, "amount_sat": 5}, errors.NOT_IN_HIVE),
    ("hive-request-promotion", {}, errors.NOT_IN_HIVE),
    ("hive-vouch", {"peer_id": T1}, errors.NOT_IN_HIVE),
    ("hive-ban", {"peer_id": T1}, errors.NOT_IN_HIVE),
    ("hive-unban", {"peer_id": T1}, errors.NOT_IN_HIVE),
    ("hive-vote", {"proposal_id": "ab" * 32, "choice": "yes"}, errors.NOT_IN_HIVE),
    ("hive-leave", {}, errors.NOT_IN_HIVE),
    ("hive-action", {"id": "nope"}, errors.INVALID_PARAMS),
    ("hive-approve-action", {"id": "nope"}, errors.INVALID_PARAMS),
    ("hive-reject-action", {"id": "nope"}, errors.INVALID_PARAMS),
    ("hive-pending-actions", {"state": "dancing"}, errors.INVALID_PARAMS),
    ("hive-diagram", {"machine": "toaster"}, errors.INVALID_PARAMS),
    ("hive-contribution", {"peer_id": "me"}, errors.INVALID_PARAMS),
    ("hive-join", {"ticket": "HIVE1:garbage"}, errors.INVALID_PARAMS),
    ("hive-join", {"ticket": "HIVE1:garbage", "timeout": 0}, errors.INVALID_PARAMS),
    ("hive-backup", {"destination": "no/such/folder/b.db"}, errors.INVALID_PARAMS),
    ("hive-events", {"machine": "toaster"}, errors.INVALID_PARAMS),
    ("hive-events", {"limit": 0}, errors.INVALID_PARAMS),
    ("hive-events", {"peer_id": "me"}, errors.INVALID_PARAMS),
    ("hive-plan", {"dry_run": "maybe"}, errors.INVALID_PARAMS),
]
AS_ADMIN = [
    ("hive-genesis", {}, errors.ALREADY_IN_HIVE),
    ("hive-request-promotion", {}, errors.NOT_ALLOWED),
    ("hive-leave", {}, errors.NOT_ALLOWED),
    ("hive-invite", {"tier": "admin"}, errors.INVALID_PARAMS),
    ("hive-vouch", {"peer_id": T1}, errors.INVALID_PARAMS),
    ("hive-intent", {"type": "channel_open", "target": T2, "amount_sat": 5}, errors.TARGET_HELD),
    ("hive-approve-action", {"id": "REJECTED"}, errors.ACTION_NOT_PENDING),
    ("hive-reject-action", {"id": "REJECTED"}, errors.ACTION_NOT_PENDING),
    ("hive-backup", {"destination": "cl-hive.db"}, errors.INVALID_PARAMS),
    # A clboss_ignore runs through CLBoss, which this node does not have.
    ("hive-approve-action", {"id": "WAITING"}, errors.COMPANION_UNAVAILABLE),
]


def test_each_refusal_has_its_code(node):
    for name, params, code in OUTSIDE:
        err = node.error(name, params)
        assert err["code"] == code, (name, params, err)
        if code == errors.INVALID_PARAMS:
            assert err["message"].split(":")[0] in params, (name, err)
    node.call("hive-genesis", {"name": "fleet"})
    node.call("hive-intent", {"type": "channel_open", "target": T2, "amount_sat": 5})
    rejected = node.call("hive-propose-action", {"kind": "clboss_ignore", "target": T1})["id"]
    node.call("hive-reject-action", {"id": rejected})
    waiting = node.call("hive-propose-action", {"kind": "clboss_ignore", "target": T2})["id"]
    ids = {"REJECTED": rejected, "WAITING": waiting}
    for name, params, code in AS_ADMIN:
        params = {k: ids.get(v, v) for k, v in params.items()}
        err = node.error(name, params)
        assert err["code"] == code, (name, params, err)
    # The refused approval left the action awaiting, with why in the error's data.
    assert node.call("hive-action", {"id": waiting})["state"] == "awaiting_approval"
    err = node.error("hive-approve-action", {"id": waiting})
    assert err["data"]["companion"] == "clboss" and "not detected" in err["data"]["reason"]
    # Every command appears in the tables or answers on a fresh node (the read-only ones).
    tabled = {name for name, _, _ in OUTSIDE + AS_ADMIN}
    assert set(node.commands) - tabled == {
        "hive-status", "hive-members", "hive-topology", "hive-intents", "hive-proposals",
        "hive-pending-actions", "hive-propose-action"} - tabled


def test_a_fault_is_an_internal_error_code_logged_once_with_its_traceback(node, monkeypatch):
    from handlers import status as status_view

    def broken(machine):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr(status_view, "diagram", broken)
    with capture_logs() as logs:
        err = node.error("hive-diagram", {"machine": "intent_lock"})
    assert err == {"code": errors.INTERNAL_ERROR,
                   "message": "hive-diagram: internal error (ZeroDivisionError); the "
                              "traceback is in the log"}
    faults = [e for e in logs if e["log_level"] == "error"]
    assert len(faults) == 1 and faults[0].get("exc_info"), logs

    # Raised by the command itself, before any worker: the same answer, logged here once.
    def broken_status():
        raise KeyError("oops")
    monkeypatch.setattr(node.hive, "status", broken_status)
    with capture_logs() as logs:
        err = node.error("hive-status")
    assert err["code"] == errors.INTERNAL_ERROR and "traceback" not in err
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["command.fault"]


def _floats(obj, path=""):
    if isinstance(obj, float):
        yield path
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _floats(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for v in obj:
            yield from _floats(v, f"{path}[]")


READS = ["hive-status", "hive-members", "hive-topology", "hive-intents", "hive-proposals",
         "hive-contribution", "hive-pending-actions"]
# Scores and ratios are fractions by nature; everything else (times above all) is whole.
FRACTIONS = {"score", "reliability", "contribution", "topology", "ratio"}


def _keys(obj, depth=2):
    """A result's shape: its keys, and those of the objects in it, `depth` levels down
    (deeper levels hold data, such as machine counts per state)."""
    if isinstance(obj, dict) and depth > 0:
        return {k: _keys(v, depth - 1) for k, v in obj.items()}
    return None


def test_results_show_whole_seconds_and_keep_their_shape_in_a_hive_or_not(node, clock):
    clock.advance(0.25)         # the clock has fractions, as time.time() does
    outside = {name: node.call(name) for name in READS}
    node.call("hive-genesis", {"name": "fleet"})
    node.call("hive-intent", {"type": "channel_open", "target": T2, "amount_sat": 5})
    action = node.call("hive-propose-action", {"kind": "clboss_ignore", "target": T1})
    inside = {name: node.call(name) for name in READS}
    inside["hive-action"] = node.call("hive-action", {"id": action["id"]})
    for name, result in inside.items():
        bad = [p for p in _floats(result) if p.rsplit(".", 1)[-1] not in FRACTIONS]
        assert bad == [], (name, bad)
    assert action["created_at"] == int(clock.now())
    for name in READS:
        assert _keys(outside[name]) == _keys(inside[name]), name
