"""What an operator meets, on a fleet of real plugin processes (stand-in and lightningd):
the plugin started through `cl-hive.py` (the entry `reckless install cl-hive` finds and
runs), each command's usage in `help`, and a refused join that answers at once with why."""
from pathlib import Path

import pytest
from pyln.client import RpcError

import plugin as plugin_module
from handlers.frame import errors
from handlers.hive import Hive

ENTRY = Path(__file__).resolve().parents[1] / "cl-hive.py"
# A handshake that would take ten minutes to time out: a join that ends sooner was refused.
SLOW_TIMEOUT = {"hive-handshake-timeout-seconds": 600}


def test_the_cl_hive_entry_runs_the_plugin_as_reckless_would(fleet):
    a, = fleet.nodes(1, plugins=[ENTRY])
    assert a.rpc.call("hive-status")["version"]
    # lightningd names a plugin's log lines after its file: `plugin-cl-hive.py`.
    fleet.wait_for(lambda: any(m.startswith("hive.started ") for m in a.plugin_log("cl-hive.py")),
                   what="cl-hive.py to log its start")
    assert a.plugin_log("plugin.py") == []


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
