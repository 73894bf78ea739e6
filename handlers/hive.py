"""The running hive: configuration, database and engine, and the entry points that
`plugin.py` wires lightningd's hooks, notifications and commands to."""
from __future__ import annotations

import functools
import os
import sqlite3
from concurrent.futures import Future

import structlog
from pyln.client import RpcError, RpcException

from handlers import backup as backup_view
from handlers import events as events_view
from handlers import health as health_view
from handlers import router
from handlers import status as status_view
from handlers.bridge import fees
from handlers.bridge.companions import Bridge
from handlers.bridge.pool import CallPool
from handlers.contribution import flow as contribution
from handlers.contribution import view as contribution_view
from handlers.contribution.ledger import Ledger
from handlers.council import leave as council_leave
from handlers.council import proposals as council
from handlers.council import sync as council_sync
from handlers.council import view as council_view
from handlers.frame import config as cfg
from handlers.frame import errors, retention
from handlers.frame.clock import SystemClock
from handlers.frame.context import Context
from handlers.frame.effects import Prefetching
from handlers.frame.engine import MAX_BATCH, Engine
from handlers.frame.ratelimit import RateLimiter
from handlers.frame.refusals import refusal_log
from handlers.governance import actions as governance
from handlers.governance import execution as governance_execution
from handlers.governance import notify as governance_notify
from handlers.hivemap import gossip
from handlers.intents import execution
from handlers.intents import locks as intents
from handlers.join_command import JoinCommand, failed
from handlers.membership import members as membership
from handlers.planner import cycle as planner
from handlers.wire import framing as wire
from storage.db import Database, DatabaseDamaged, SchemaTooNew

log = structlog.get_logger("hive")

# Per-peer budget for all hive messages, checked in the hook before anything is queued.
MESSAGE_RATE, MESSAGE_BURST = 20.0, 100
# HELLOs cost the admin a signature check: a few, then one per 10 seconds.
HELLO_RATE, HELLO_BURST = 0.1, 3
# JOIN_REFUSED answers to refused HELLOs, across all peers: a few, then one a second.
JOIN_REFUSAL_RATE, JOIN_REFUSAL_BURST = 1.0, 10
# A STATE_HASH may cost a FULL_SYNC: a few, then one per 5 seconds.
SYNC_RATE, SYNC_BURST = 0.2, 3
# A FULL_SYNC may cost a signature check per member: a sync's chunks, then one a second.
FULL_SYNC_RATE, FULL_SYNC_BURST = 1.0, 8
# A PROPOSAL, VOTE, DECISION or LEAVE costs one or more signature checks.
COUNCIL_RATE, COUNCIL_BURST = 2.0, 20


class StartupError(RuntimeError):
    """The plugin cannot run; the message is what lightningd shows as the disable reason."""


class Hive:
    def __init__(self, clock=None):
        self.clock = clock or SystemClock()
        self.config: cfg.ConfigSnapshot | None = None
        self.db: Database | None = None
        self.engine: Engine | None = None
        self.ctx: Context | None = None
        self.message_limiter = RateLimiter(self.clock, MESSAGE_RATE, MESSAGE_BURST)
        self.joining: JoinCommand | None = None     # hive-join's waiting answers
        self.ledger = Ledger(self.clock)
        # Peers lightningd says are connected, from its connect/disconnect notifications
        # (seeded by one listpeers at start): hive-status reads it without calling lightningd.
        self.connected_peers: set[str] = set()

    # -- lifecycle ------------------------------------------------------------------
    def start(self, snapshot: cfg.ConfigSnapshot, lightning, notifier=None) -> None:
        self.config = snapshot
        db_dir = os.path.dirname(snapshot.db_path)
        if not os.path.isdir(db_dir):
            raise StartupError(f"hive-db-path: directory {db_dir} does not exist")
        db = Database(snapshot.db_path)
        try:
            check = db.check()
            before = db.migrate()
        except DatabaseDamaged as e:
            db.close()
            raise StartupError(
                f"hive-db-path: {snapshot.db_path} is damaged ({e}). cl-hive does not repair "
                "it: stop lightningd, move the file (and its -wal, -shm) aside, and restore a "
                "backup or start with a fresh hive-db-path.") from e
        except (sqlite3.Error, SchemaTooNew) as e:
            db.close()
            raise StartupError(f"hive-db-path: cannot use {snapshot.db_path}: {e}") from e
        self.db = db
        # Signature checks of a burst of GOSSIP are asked ahead, all at once, while the
        # worker applies the burst before it: room for the answers of a few batches.
        checks = None if lightning is None else Prefetching(lightning, keep=4 * MAX_BATCH)
        self.engine = Engine(db, self.clock, lambda: self.config, lightning,
                             **({} if checks is None else {"gather": checks.gather}))
        self.ctx = Context(db=db, dispatcher=self.engine.dispatcher, lightning=checks,
                           clock=self.clock, config=lambda: self.config,
                           hello_limiter=RateLimiter(self.clock, HELLO_RATE, HELLO_BURST),
                           join_refusal_limiter=RateLimiter(self.clock, JOIN_REFUSAL_RATE,
                                                            JOIN_REFUSAL_BURST),
                           sync_limiter=RateLimiter(self.clock, SYNC_RATE, SYNC_BURST),
                           full_sync_limiter=RateLimiter(self.clock, FULL_SYNC_RATE,
                                                         FULL_SYNC_BURST),
                           council_limiter=RateLimiter(self.clock, COUNCIL_RATE, COUNCIL_BURST),
                           drain=self.engine.drain_outbox,
                           bridge=Bridge(CallPool(lightning, self.engine.submit)),
                           notifier=notifier)
        self._learn_node_id()
        self.joining = JoinCommand(self.ctx, self.command)
        self.engine.dispatcher.observers.append(self.joining.on_outcome)
        fees.install(self.ctx.bridge)
        self.engine.dispatcher.observers.append(lambda o: fees.on_member_outcome(self.ctx, o))
        self.engine.dispatcher.observers.append(lambda o: gossip.on_member_outcome(self.ctx, o))
        governance_notify.install(self.ctx, governance.view)
        self.engine.on_tick.append(self.joining.expire)
        # partials, not lambdas: a failing step is logged under its function's name
        self.engine.on_tick.append(functools.partial(gossip.on_tick, self.ctx))
        self.engine.on_tick.append(functools.partial(council_sync.on_tick, self.ctx))
        self.engine.on_tick.append(functools.partial(execution.on_tick, self.ctx))
        self.engine.on_tick.append(functools.partial(retention.on_tick, self.ctx))
        self.engine.on_tick.append(functools.partial(self.ctx.bridge.on_tick, self.ctx))
        self.engine.on_tick.append(functools.partial(contribution.on_tick, self.ctx, self.ledger))
        self.engine.on_tick.append(functools.partial(governance_execution.on_tick, self.ctx))
        self.engine.on_tick.append(functools.partial(planner.on_tick, self.ctx))
        self.engine.start()
        # Intents a crash left `executing` are reconciled before anything else runs.
        self.engine.submit(lambda: execution.reconcile(self.ctx))
        # Pending actions a restart interrupted: an oracle call waits for the operator.
        self.engine.submit(lambda: governance_execution.reconcile(self.ctx))
        self.engine.submit(self._seed_connected)
        # Companions are detected off the worker; a missing one is a degraded state.
        self.engine.submit(lambda: self.ctx.bridge.start(self.ctx))
        log.info("hive.started", db_path=snapshot.db_path, db_check=check, schema_from=before,
                 schema_version=db.schema_version(), governance_mode=snapshot.governance_mode)

    def _learn_node_id(self) -> None:
        """Ask lightningd our id now, so that no thread has to ask later (the reader
        thread answers hive-status and hive-members without calling lightningd)."""
        if self.ctx.lightning is None:       # a hive without lightningd (queue tests)
            return
        try:
            self.ctx.node_id
        except (RpcError, OSError) as e:     # asked again on first use, on the worker
            log.warning("hive.node_id_unknown", error=str(e))

    def _seed_connected(self) -> None:
        if self.ctx.lightning is None:
            return
        try:
            peers = self.ctx.lightning.call("listpeers", {}).get("peers", [])
        except (RpcError, OSError) as e:     # then only notifications fill it
            return log.warning("hive.peers_unknown", error=str(e))
        self.connected_peers |= {p["id"] for p in peers if p.get("connected")}

    def stop(self) -> None:
        """Stop the threads and close the database; safe to call more than once."""
        if self.engine is not None:
            stopped = self.engine.stop()
            self.engine = None
            self.ctx.bridge.pool.shutdown()
            if not stopped:
                # A thread still in a call to lightningd would meet a closed database and
                # fail; leave it open (the process is ending, and every commit is durable).
                log.warning("hive.stop_timeout", database="left open")
                return
        if self.db is not None:
            self.db.close()
            self.db = None
            log.info("hive.stopped")

    @property
    def running(self) -> bool:
        return self.engine is not None

    # -- configuration ----------------------------------------------------------------
    def change_config(self, name: str, value) -> None:
        """`setconfig`: refused with a clear error unless the whole new snapshot is valid."""
        try:
            new = cfg.with_change(self.config, name, value)
        except cfg.ConfigError as e:
            raise RpcException(str(e), errors.INVALID_PARAMS) from None
        self.config = new
        log.info("config.changed", option=name, value=getattr(new, cfg.BY_NAME[name].field))

    # -- inputs from lightningd -------------------------------------------------------------
    def on_custommsg(self, peer_id: str, payload: str) -> None:
        """Never raises: whatever a peer sends, the hook answers `continue`."""
        if wire.peek(payload) is None or not self.running:
            return      # not ours (another plugin's), or not started
        if not self.message_limiter.allow(peer_id):
            refusal_log(log, "wire.rate_limited", peer_id)
            return
        incoming = router.Incoming(self.ctx, peer_id, payload)
        self.engine.submit(incoming.handle, droppable=True, prepare=incoming.prefetch)

    def on_peer_connected(self, peer_id: str) -> None:
        """The `connect` notification: the peer is up; a member gets our fleet hash and
        our membership hash."""
        log.debug("peer.connected", peer_id=peer_id)
        self.connected_peers.add(peer_id)
        if self.running:
            self.engine.submit(lambda: gossip.on_member_connected(self.ctx, peer_id),
                               droppable=True)
            self.engine.submit(lambda: council_sync.on_member_connected(self.ctx, peer_id),
                               droppable=True)

    def on_channel_event(self, event: str) -> None:
        """`channel_opened` / `channel_state_changed`: our channels changed, so the next
        tick reads them again (otherwise it reads them once per sync interval)."""
        log.debug("channel.event", notification=event)
        self.ledger.channels_changed()
        if self.running:
            self.engine.submit(functools.partial(gossip.channels_changed, self.ctx),
                               droppable=True)

    def on_disconnect(self, peer_id: str) -> None:
        log.debug("peer.disconnected", peer_id=peer_id)
        self.connected_peers.discard(peer_id)

    def on_forward_event(self, event: dict) -> None:
        """On pyln's main thread: absorbed into the ledger's bounded sums, written at the
        next tick (never a worker item per event)."""
        if self.running:
            self.ledger.offer(event)

    # -- commands -----------------------------------------------------------------------
    def command(self, fn) -> Future:
        """Run a command on the engine's worker, where machine state is owned."""
        if not self.running:
            fut: Future = Future()
            fut.set_exception(RpcException("cl-hive is not running", errors.NOT_RUNNING))
            return fut
        return self.engine.submit(fn)

    def read(self, fn) -> Future:
        """Run a read-only command on the reader thread: it answers even while the worker
        waits on a slow call."""
        if not self.running:
            return failed(RpcException("cl-hive is not running", errors.NOT_RUNNING))
        return self.engine.read(fn)

    def status(self) -> Future:
        def run():
            out = status_view.status(self.db, self.config)
            view = membership.members_view(self.ctx)
            out["hive"] = {k: view.get(k) for k in ("hive_id", "name", "admin", "our_tier")}
            out["hive"]["members"] = len(view["members"])
            out["engine"] = self.engine.stats()
            out["bridge"] = self.ctx.bridge.view(self.ctx)
            out.update(health_view.health(self.ctx, connected=set(self.connected_peers),
                                          bridge=out["bridge"], machine_counts=out["machines"]))
            out["contribution"] = self.ledger.stats()
            out["membership"] = council_sync.status(self.ctx)
            return out
        return self.read(run)

    def genesis(self, name) -> Future:
        return self.command(lambda: membership.genesis(self.ctx, name))

    def invite(self, valid_hours, tier, peer_id) -> Future:
        return self.command(lambda: membership.invite(self.ctx, valid_hours, tier, peer_id))

    def topology(self) -> Future:
        return self.command(lambda: planner.annotate_topology(self.ctx,
                                                              gossip.topology_view(self.ctx)))

    def plan(self, dry_run) -> Future:
        """The stored plan; with dry_run=true one computed now (answered when the graph
        read ends), acting on nothing."""
        answer: Future = Future()

        def begin():
            out = planner.view(self.ctx, dry_run)
            if isinstance(out, Future):
                out.add_done_callback(lambda f: answer.set_exception(f.exception())
                                      if f.exception() else answer.set_result(f.result()))
            else:
                answer.set_result(out)

        def started(f: Future):
            if f.exception() is not None:
                answer.set_exception(f.exception())
        self.command(begin).add_done_callback(started)
        return answer

    def intent(self, intent_type, target, amount_sat, **rebalance) -> Future:
        return self.command(lambda: intents.announce(self.ctx, intent_type, target, amount_sat,
                                                     **rebalance))

    def intents(self) -> Future:
        return self.command(lambda: intents.listing(self.ctx))

    # -- governance -------------------------------------------------------------------
    def pending_actions(self, state) -> Future:
        return self.read(lambda: governance.listing(self.ctx, state))

    def action(self, action_id) -> Future:
        return self.read(lambda: governance.one(self.ctx, action_id))

    def approve_action(self, action_id) -> Future:
        return self.command(lambda: governance.approve(self.ctx, action_id))

    def reject_action(self, action_id, reason) -> Future:
        return self.command(lambda: governance.reject(self.ctx, action_id, reason))

    def propose_action(self, kind, target, amount_sat, reason, **params) -> Future:
        return self.command(lambda: governance.propose(self.ctx, kind, target, amount_sat,
                                                       reason, origin="operator", **params))

    def members(self) -> Future:
        return self.read(lambda: council_view.annotate(self.ctx, contribution_view.annotate(
            self.ctx, membership.members_view(self.ctx))))

    def request_promotion(self) -> Future:
        return self.command(lambda: council.request_promotion(self.ctx))

    def vouch(self, peer_id) -> Future:
        return self.command(lambda: council.vouch(self.ctx, peer_id))

    def ban(self, peer_id, reason) -> Future:
        return self.command(lambda: council.open_ban_proposal(self.ctx, peer_id, reason))

    def unban(self, peer_id, reason) -> Future:
        return self.command(lambda: council.unban(self.ctx, peer_id, reason))

    def vote(self, proposal_id, choice) -> Future:
        return self.command(lambda: council.vote(self.ctx, proposal_id, choice))

    def proposals(self) -> Future:
        return self.read(lambda: council_view.listing(self.ctx))

    def leave(self) -> Future:
        return self.command(lambda: council_leave.leave(self.ctx))

    def contribution(self, peer_id) -> Future:
        return self.read(lambda: contribution_view.series(self.ctx, peer_id))

    def backup(self, destination) -> Future:
        # On the reader thread: the copy is one read transaction, the worker carries on.
        return self.read(lambda: backup_view.backup(self.db, destination))
    def events(self, machine, instance_id, peer_id, since, limit) -> Future:
        return self.read(lambda: events_view.events(self.ctx, machine, instance_id, peer_id,
                                                     since, limit))

    def diagram(self, machine) -> Future:
        return self.read(lambda: status_view.diagram(machine))

    def join(self, ticket, address, timeout) -> Future:
        """Answers when the joiner's session ends, or after `timeout` (join_command)."""
        return self.joining.start(ticket, address, timeout)
