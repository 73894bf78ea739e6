#!/usr/bin/env python3
"""cl-hive: a Core Lightning plugin that makes a fleet of nodes act as one.

Wiring only: options, hooks, subscriptions and commands, each routed to `handlers/`.
Importing this file does nothing; lightningd runs it as a program.
"""
# lightningd runs us by path, so Python puts this file's folder (and our packages) on
# sys.path whatever the cwd is.
import signal
import sys
from pathlib import Path

import structlog
from pyln.client import Plugin, RpcException
from pyln.client.plugin import hook_fallbacks

from handlers.frame import config as cfg
from handlers.frame import effects, logs, replies
from handlers.frame.effects import PluginNotifier, ThreadLocalRpc
from handlers.governance import notify as governance_notify
from handlers.wire import framing as wire
from handlers.hive import Hive, StartupError


_answer = replies.answer
log = structlog.get_logger("hive.plugin")


class HivePlugin(Plugin):
    """pyln's Plugin, but a `hive-*` command's bad parameters are -32602 naming the
    parameter, and a fault is a cl-hive error code with the traceback in the log only
    (pyln would answer both with -32600 and a traceback)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.direct_hooks = {}      # hook name -> fn(params) -> its answer

    def _dispatch_request(self, request) -> None:
        direct = self.direct_hooks.get(request.method)
        if direct is not None and isinstance(request.params, dict):
            return self._answer_hook(direct, request)
        method = self.methods.get(request.method)
        if method is None or not request.method.startswith("hive-"):
            return super()._dispatch_request(request)
        request.background = method.background
        problem = replies.bind_problem(method.func, request.params)
        if problem is not None:
            return replies.fail(request, problem)
        try:
            self._exec_func(method.func, request)
        except RpcException as e:
            replies.fail(request, e)
        except Exception as e:    # answered with a code; logged once, with the traceback
            replies.fail(request, replies.internal_fault(request.method, e))

    def _answer_hook(self, direct, request) -> None:
        """A hook called for every peer message, answered without pyln's per-call work
        (binding its parameters by signature, recording a stack trace with the answer):
        the same answer, and on a fault the same fallback pyln would give."""
        try:
            result = direct(request.params)
        except Exception as e:      # never reached by a peer's input (the hive takes all)
            log.error("hook.failed", hook=request.method, error=repr(e), exc_info=True)
            result = hook_fallbacks[request.method]
        self._write_locked({"jsonrpc": "2.0", "id": request.id, "result": result})

    def command(self, name: str):
        """Register an asynchronous command whose docstring follows its parameters in
        the usage lightningd shows (`lightning-cli help <name>`)."""
        def register(fn):
            self.add_method(name, fn, background=True, description=fn.__doc__)
            return fn
        return register


def build(hive=None) -> Plugin:
    hive = hive or Hive()
    plugin = HivePlugin(dynamic=True)

    for opt in cfg.OPTIONS:
        plugin.add_option(
            opt.name, opt.default, opt.description, opt_type=opt.type, dynamic=opt.dynamic,
            on_change=(lambda _p, name, value: hive.change_config(name, value))
            if opt.dynamic else None)

    for topic in governance_notify.TOPICS:
        plugin.add_notification_topic(topic)

    @plugin.init()
    def init(options, configuration, plugin, **kwargs):
        try:
            snapshot = cfg.from_init(options, configuration["lightning-dir"])
        except cfg.ConfigError as e:
            return {"disable": str(e)}
        logs.configure(plugin.log, log_file=snapshot.log_file)
        rpc_path = str(Path(configuration["lightning-dir"]) / configuration["rpc-file"])
        try:
            hive.start(snapshot, ThreadLocalRpc(
                rpc_path, timeout=lambda method: effects.timeout_for(hive.config, method)),
                notifier=PluginNotifier(plugin))
        except StartupError as e:
            return {"disable": str(e)}
        return None

    # `filters` (lightningd v25.12+): only our message types are sent to us, so cl-hive is
    # not in the hook chain of other protocols' messages. No `peer_connected` hook: it
    # would delay every connection; anti-entropy starts on the `connect` notification.
    @plugin.hook("custommsg", filters=sorted(wire.KNOWN_TYPES))
    def on_custommsg(peer_id, payload, plugin, **kwargs):
        hive.on_custommsg(peer_id, payload)
        return {"result": "continue"}
    # Every peer message comes through here: answered directly (HivePlugin._answer_hook).
    plugin.direct_hooks["custommsg"] = lambda params: on_custommsg(
        params["peer_id"], params["payload"], plugin)

    @plugin.subscribe("connect")
    def on_connect(plugin, **kwargs):
        hive.on_peer_connected(kwargs["connect"]["id"])

    @plugin.subscribe("disconnect")
    def on_disconnect(plugin, **kwargs):
        hive.on_disconnect(kwargs["disconnect"]["id"])

    @plugin.subscribe("channel_opened")
    def on_channel_opened(plugin, **kwargs):
        hive.on_channel_event("channel_opened")

    @plugin.subscribe("channel_state_changed")
    def on_channel_state_changed(plugin, **kwargs):
        hive.on_channel_event("channel_state_changed")

    @plugin.subscribe("forward_event")
    def on_forward_event(plugin, **kwargs):
        hive.on_forward_event(kwargs["forward_event"])

    @plugin.subscribe("shutdown")
    def on_shutdown(plugin, **kwargs):
        raise SystemExit(0)   # leaves pyln's read loop; main() stops the hive on the way out

    @plugin.command("hive-status")
    def hive_status(request, plugin):
        """The health page: members connected of the total, companions and breakers,
        actions waiting, oldest member state, outbox backlog, warnings to act on; then
        version, governance mode, database, and machines per kind and state."""
        _answer(request, hive.status())

    @plugin.command("hive-genesis")
    def hive_genesis(request, plugin, name=None):
        """Create a hive with this node as its admin."""
        _answer(request, hive.genesis(name))

    @plugin.command("hive-invite")
    def hive_invite(request, plugin, valid_hours=None, tier=None, peer_id=None):
        """An admin-signed, single-use invite ticket (tier neophyte|member)."""
        _answer(request, hive.invite(valid_hours, tier, peer_id))

    @plugin.command("hive-join")
    def hive_join(request, plugin, ticket, address=None, timeout=None):
        """Join the hive of a ticket: handshake with its admin (address=host:port)."""
        _answer(request, hive.join(ticket, address, timeout))

    @plugin.command("hive-members")
    def hive_members(request, plugin):
        """The hive id, this node's tier, and every member with its tier and contribution."""
        _answer(request, hive.members())

    @plugin.command("hive-request-promotion")
    def hive_request_promotion(request, plugin):
        """A neophyte past its probation asks the members for promotion (a signed request)."""
        _answer(request, hive.request_promotion())

    @plugin.command("hive-vouch")
    def hive_vouch(request, plugin, peer_id):
        """Vouch (a signed yes vote) for a neophyte's open promotion request."""
        _answer(request, hive.vouch(peer_id))

    @plugin.command("hive-ban")
    def hive_ban(request, plugin, peer_id, reason=None):
        """Propose to ban a member (and vote yes on it); banned once a quorum votes yes."""
        _answer(request, hive.ban(peer_id, reason))

    @plugin.command("hive-unban")
    def hive_unban(request, plugin, peer_id, reason=None):
        """Propose to lift a member's ban (and vote yes on it); it then counts as left."""
        _answer(request, hive.unban(peer_id, reason))

    @plugin.command("hive-vote")
    def hive_vote(request, plugin, proposal_id, choice):
        """Vote yes or no on an open promotion, ban or unban proposal."""
        _answer(request, hive.vote(proposal_id, choice))

    @plugin.command("hive-proposals")
    def hive_proposals(request, plugin):
        """Every promotion, ban and unban proposal with its votes, quorum and status."""
        _answer(request, hive.proposals())

    @plugin.command("hive-leave")
    def hive_leave(request, plugin):
        """Leave the hive (a signed LEAVE); a new ticket brings this node back later."""
        _answer(request, hive.leave())

    @plugin.command("hive-contribution")
    def hive_contribution(request, plugin, peer_id=None):
        """Daily forwarded/received msat inside the contribution window (one member or all)."""
        _answer(request, hive.contribution(peer_id))

    @plugin.command("hive-intent")
    def hive_intent(request, plugin, type, target, amount_sat=None, from_channel=None,
                    to_channel=None, max_fee_sats=None):
        """Announce an intent lock (channel_open|rebalance) on a target node directly, for
        tests and experts (hive-propose-action is the normal way); a rebalance names its
        from_channel, to_channel (ours to the target) and max_fee_sats."""
        _answer(request, hive.intent(type, target, amount_sat, from_channel=from_channel,
                                     to_channel=to_channel, max_fee_sats=max_fee_sats))

    @plugin.command("hive-propose-action")
    def hive_propose_action(request, plugin, kind, target, amount_sat=None, reason=None,
                            from_channel=None, to_channel=None, max_fee_sats=None):
        """Propose an action (channel_open|rebalance|clboss_ignore|ban) on a target node; the
        governance mode decides it. A rebalance names from_channel, to_channel, max_fee_sats."""
        _answer(request, hive.propose_action(kind, target, amount_sat, reason,
                                             from_channel=from_channel, to_channel=to_channel,
                                             max_fee_sats=max_fee_sats))

    @plugin.command("hive-pending-actions")
    def hive_pending_actions(request, plugin, state=None):
        """Governance actions, newest first (only those in `state`, if given)."""
        _answer(request, hive.pending_actions(state))

    @plugin.command("hive-action")
    def hive_action(request, plugin, id):
        """One governance action with its transitions."""
        _answer(request, hive.action(id))

    @plugin.command("hive-approve-action")
    def hive_approve_action(request, plugin, id):
        """Approve an action awaiting approval: it executes (once)."""
        _answer(request, hive.approve_action(id))

    @plugin.command("hive-reject-action")
    def hive_reject_action(request, plugin, id, reason=None):
        """Reject an action awaiting approval."""
        _answer(request, hive.reject_action(id, reason))

    @plugin.command("hive-intents")
    def hive_intents(request, plugin):
        """Local and remote intent locks with their states and deadlines."""
        _answer(request, hive.intents())

    @plugin.command("hive-topology")
    def hive_topology(request, plugin):
        """The HiveMap: each member's state and age, the fleet's capacity per external peer."""
        _answer(request, hive.topology())

    @plugin.command("hive-backup")
    def hive_backup(request, plugin, destination):
        """Copy the database to a new file (SQLite's online backup, safe while running)."""
        _answer(request, hive.backup(destination))

    @plugin.command("hive-plan")
    def hive_plan(request, plugin, dry_run=None):
        """The planner's last plan (saturated targets, proposals and why), or with
        dry_run=true one computed now without acting."""
        _answer(request, hive.plan(dry_run))

    @plugin.command("hive-diagram")
    def hive_diagram(request, plugin, machine):
        """The Mermaid state diagram of one machine kind, e.g. machine=intent_lock."""
        _answer(request, hive.diagram(machine))

    @plugin.command("hive-events")
    def hive_events(request, plugin, machine=None, id=None, peer_id=None, since=None,
                    limit=None):
        """The transition log, newest first: every state change of every machine (only
        those of `machine` kind, instance `id`, `peer_id`, at or after Unix time `since`);
        at most `limit` (default 50, up to 1000)."""
        _answer(request, hive.events(machine, id, peer_id, since, limit))

    plugin.hive = hive
    return plugin


def main() -> None:
    # The hook thread must answer lightningd promptly while the worker computes: hand the
    # interpreter lock over every 0.5 ms rather than Python's default 5 ms.
    sys.setswitchinterval(0.0005)
    plugin = build()

    def on_sigterm(_signum, _frame):
        # Only unwind here: the interrupted code may hold a lock that stopping needs.
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        plugin.run()
    finally:
        plugin.hive.stop()


if __name__ == "__main__":
    main()
