"""What an operator meets, on a fleet of real plugin processes (stand-in and lightningd):
the plugin started through `cl-hive.py` (the entry `reckless install cl-hive` finds and
runs), each command's usage in `help`, a refused join that answers at once with why, and an
approval refused while the companion it needs is missing."""
from pathlib import Path

import pytest
from pyln.client import RpcError

import plugin as plugin_module
from handlers.frame import errors
from handlers.hive import Hive
from tests.fleet_helpers import form_hive
from tests.standin.backend import COMPANIONS
from tests.standin.bridge_faults import FAST, companion

ROOT = Path(__file__).resolve().parents[1]
ENTRY = ROOT / "cl-hive.py"
# A handshake that would take ten minutes to time out: a join that ends sooner was refused.
SLOW_TIMEOUT = {"hive-handshake-timeout-seconds": 600}


def test_the_cl_hive_entry_runs_the_plugin_as_reckless_would(fleet):
    a, = fleet.nodes(1, plugins=[ENTRY])
    assert a.rpc.call("hive-status")["version"]
    # lightningd names a plugin's log lines after its file: `plugin-cl-hive.py`.
    fleet.wait_for(lambda: any(m.startswith("hive.started ") for m in a.plugin_log("cl-hive.py")),
                   what="cl-hive.py to log its start")
    assert a.plugin_log("plugin.py") == []


def test_the_plain_cl_hive_entry_logs_as_plugin_cl_hive(fleet):
    # `cl-hive` (it runs cl-hive.py) is for --plugin= users: lightningd names the log
    # lines after the file it started.
    a, = fleet.nodes(1, plugins=[ROOT / "cl-hive"])
    assert a.rpc.call("hive-status")["version"]
    fleet.wait_for(lambda: any(m.startswith("hive.started ") for m in a.plugin_log("cl-hive")),
                   what="cl-hive to log its start as plugin-cl-hive")
    assert a.plugin_log("cl-hive.py") == [] and a.plugin_log("plugin.py") == []


def test_help_shows_every_commands_usage(fleet):
    a, = fleet.nodes(1)
    commands = {name: m for name, m in plugin_module.build(Hive()).methods.items()
                if name.startswith("hive-")}
    for name, method in commands.items():
        [entry] = a.rpc.call("help", {"command": name})["help"]
        first_line = method.func.__doc__.strip().splitlines()[0]
        assert entry["command"].startswith(name + " ") and first_line in entry["command"], \
            entry


def _refused(joiner, ticket) -> dict:
    with pytest.raises(RpcError) as e:
        joiner.rpc.call("hive-join", {"ticket": ticket})
    return e.value.error


def test_a_join_refused_for_a_used_ticket_answers_at_once_with_the_reason(fleet):
    a, b, c = fleet.nodes(3, options=SLOW_TIMEOUT)
    fleet.connect(a, b)
    fleet.connect(a, c)
    a.rpc.call("hive-genesis", {})
    ticket = a.rpc.call("hive-invite", {})["ticket"]
    assert b.rpc.call("hive-join", {"ticket": ticket})["state"] == "joined"
    err = _refused(c, ticket)
    assert err["code"] == errors.JOIN_REFUSED and err["message"].startswith("ticket_used: ")
    assert err["data"]["reason"] == "ticket_used" and err["data"]["state"] == "refused"
    assert c.rpc.call("hive-members")["hive_id"] is None


def test_a_join_refused_by_a_full_hive_answers_at_once_with_the_reason(fleet):
    a, b, c = fleet.nodes(3, options=[{"hive-max-members": 2}, SLOW_TIMEOUT, SLOW_TIMEOUT])
    fleet.connect(a, b)
    fleet.connect(a, c)
    a.rpc.call("hive-genesis", {})
    tickets = [a.rpc.call("hive-invite", {})["ticket"] for _ in range(2)]
    assert b.rpc.call("hive-join", {"ticket": tickets[0]})["state"] == "joined"
    err = _refused(c, tickets[1])
    assert (err["code"], err["data"]["reason"]) == (errors.JOIN_REFUSED, "hive_full")
    # hive-status counts the session as refused, and the admin's members are unchanged.
    assert c.rpc.call("hive-status")["machines"]["handshake_joiner"] == {"refused": 1}
    assert len(a.rpc.call("hive-members")["members"]) == 2


def test_an_approval_that_needs_a_missing_companion_is_refused_until_it_runs(fleet):
    a, = fleet.nodes(1, options=FAST)
    form_hive(fleet, [a])
    target = "02" + "33" * 32
    act = a.rpc.call("hive-propose-action", {"kind": "clboss_ignore", "target": target})
    with pytest.raises(RpcError) as e:
        a.rpc.call("hive-approve-action", {"id": act["id"]})
    err = e.value.error
    assert err["code"] == errors.COMPANION_UNAVAILABLE and err["data"]["companion"] == "clboss"
    assert a.rpc.call("hive-action", {"id": act["id"]})["state"] == "awaiting_approval"
    # The operator starts CLBoss; once cl-hive has detected it, the same approval runs.
    a.rpc.call("plugin", {"subcommand": "start", "plugin": str(COMPANIONS["clboss"])})
    fleet.wait_for(lambda: companion(a, "clboss")["detected"], timeout=15, what="detection")
    a.rpc.call("hive-approve-action", {"id": act["id"]})
    fleet.wait_for(lambda: a.rpc.call("hive-action", {"id": act["id"]})["state"] == "executed",
                   timeout=15, what="the clboss_ignore to execute")
