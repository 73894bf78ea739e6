"""The running hive: configuration, database and engine, and the entry points that
`plugin.py` wires lightningd's hooks, notifications and commands to."""
from __future__ import annotations

import os
import sqlite3
from concurrent.futures import Future

import structlog
from pyln.client import RpcException

from handlers import config as cfg
from handlers import status as status_view
from handlers import wire
from handlers.clock import SystemClock
from handlers.engine import Engine
from storage.db import Database, SchemaTooNew

log = structlog.get_logger("hive")


class StartupError(RuntimeError):
    """The plugin cannot run; the message is what lightningd shows as the disable reason."""


class Hive:
    def __init__(self, clock=None):
        self.clock = clock or SystemClock()
        self.config: cfg.ConfigSnapshot | None = None
        self.db: Database | None = None
        self.engine: Engine | None = None

    # -- lifecycle ------------------------------------------------------------------
    def start(self, snapshot: cfg.ConfigSnapshot, lightning) -> None:
        self.config = snapshot
        db_dir = os.path.dirname(snapshot.db_path)
        if not os.path.isdir(db_dir):
            raise StartupError(f"hive-db-path: directory {db_dir} does not exist")
        db = Database(snapshot.db_path)
        try:
            before = db.migrate()
        except (sqlite3.Error, SchemaTooNew) as e:
            db.close()
            raise StartupError(f"hive-db-path: cannot use {snapshot.db_path}: {e}") from e
        self.db = db
        self.engine = Engine(db, self.clock, lambda: self.config, lightning)
        self.engine.start()
        log.info("hive.started", db_path=snapshot.db_path, schema_from=before,
                 schema_version=db.schema_version(), governance_mode=snapshot.governance_mode)

    def stop(self) -> None:
        """Stop the threads and close the database; safe to call more than once."""
        if self.engine is not None:
            clean = self.engine.stop()
            if not clean:
                log.warning("hive.stop_timeout")
            self.engine = None
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
            raise RpcException(str(e), status_view.INVALID_PARAMS) from None
        self.config = new
        log.info("config.changed", option=name, value=getattr(new, cfg.BY_NAME[name].field))

    # -- inputs from lightningd -------------------------------------------------------------
    def on_custommsg(self, peer_id: str, payload: str) -> None:
        """Never raises: whatever a peer sends, the hook answers `continue`."""
        msg_type = wire.peek(payload)
        if msg_type is None or not self.running:
            return
        log.debug("custommsg.unhandled", peer_id=peer_id, msg_type=msg_type)

    def on_peer_connected(self, peer_id: str) -> None:
        log.debug("peer.connected", peer_id=peer_id)

    def on_disconnect(self, peer_id: str) -> None:
        log.debug("peer.disconnected", peer_id=peer_id)

    def on_forward_event(self, event: dict) -> None:
        log.debug("forward.event", status=event.get("status"),
                  in_channel=event.get("in_channel"), out_channel=event.get("out_channel"))

    # -- commands -----------------------------------------------------------------------
    def command(self, fn) -> Future:
        """Run a command on the engine's worker, where machine state is owned."""
        if not self.running:
            fut: Future = Future()
            fut.set_exception(RpcException("cl-hive is not running", -32600))
            return fut
        return self.engine.submit(fn)

    def status(self) -> Future:
        return self.command(lambda: status_view.status(self.db, self.config))
