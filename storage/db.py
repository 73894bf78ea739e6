"""The SQLite database: WAL mode, one connection per thread, migrations, transactions."""
from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import contextmanager

from storage import changes
from storage.migrations import LATEST, MIGRATIONS


class SchemaTooNew(RuntimeError):
    """The file was written by a newer cl-hive; refusing to run on it rather than guess."""


class DatabaseDamaged(RuntimeError):
    """SQLite's own check found the file damaged; we never repair it silently."""


# Above this size `quick_check` (O(N), skips index-content checks) replaces the full
# `integrity_check`, so a large database does not hold up lightningd's start for minutes.
QUICK_CHECK_ABOVE_BYTES = 64 * 1024 * 1024


class Database:
    def __init__(self, path: str):
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    def conn(self) -> sqlite3.Connection:
        """This thread's connection (sqlite3 connections must not be shared by threads)."""
        if self._closed:
            raise sqlite3.ProgrammingError("database is closed")
        c = getattr(self._local, "conn", None)
        if c is None:
            # Autocommit mode: transactions are explicit (see `transaction`), so Python's
            # sqlite3 never opens or commits one behind our back. check_same_thread is off
            # only so `close()` can close every thread's connection at shutdown.
            c = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                timeout=10.0)
            c.row_factory = sqlite3.Row
            try:
                c.execute("PRAGMA journal_mode=WAL")
                # FULL, not WAL's usual NORMAL: NORMAL may lose the last commits on power
                # loss, and an intent's `executing` commit must be on disk before we act.
                c.execute("PRAGMA synchronous=FULL")
                c.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error:
                c.close()       # e.g. not a database file: no half-set-up connection kept
                raise
            self._local.conn = c
            with self._lock:
                self._all.append(c)
        return c

    def check(self, quick_above_bytes: int = QUICK_CHECK_ABOVE_BYTES) -> str:
        """SQLite's integrity check before first use; returns the check's name, raises
        DatabaseDamaged with SQLite's first findings when the file is damaged."""
        try:
            size = os.path.getsize(self.path)
        except OSError:
            size = 0        # not there yet: the first connection creates it
        pragma = "quick_check" if size > quick_above_bytes else "integrity_check"
        try:
            # a few findings are enough to say what is wrong; the full list can be huge
            rows = [r[0] for r in self.conn().execute(f"PRAGMA {pragma}(5)")]
        except sqlite3.DatabaseError as e:      # e.g. the header itself is not SQLite's
            raise DatabaseDamaged(f"{pragma} failed: {e}") from e
        if rows != ["ok"]:
            findings = [line for row in rows for line in str(row).splitlines() if line]
            raise DatabaseDamaged(f"{pragma} found: " + "; ".join(findings))
        return pragma

    def schema_version(self) -> int:
        return self.conn().execute("PRAGMA user_version").fetchone()[0]

    def migrate(self, target: int = LATEST) -> int:
        """Bring the schema to `target`; returns the version it started from."""
        c = self.conn()
        start = self.schema_version()
        if start > LATEST:
            raise SchemaTooNew(f"{self.path} has schema version {start}; this cl-hive knows "
                               f"up to {LATEST}. Install the newer cl-hive that wrote it, or "
                               f"point hive-db-path at a backup made by this version.")
        for number, _about, statements in MIGRATIONS:
            if number <= start or number > target:
                continue
            c.execute("BEGIN IMMEDIATE")
            try:
                for stmt in statements:
                    c.execute(stmt)
                c.execute(f"PRAGMA user_version = {int(number)}")
            except BaseException:
                c.execute("ROLLBACK")
                raise
            c.execute("COMMIT")
        if start < target:
            changes.reset(c)        # a rebuilt table lost this connection's counters
        return start

    @contextmanager
    def transaction(self):
        """One atomic unit: everything done through the yielded connection commits
        together (a state change, its log record, its outbound messages) or not at all.

        Nested calls on the same thread join the outer transaction through a savepoint,
        so a handler can compose several steps that each use a transaction themselves."""
        c = self.conn()
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            # One list of callbacks per level: a savepoint's list joins its parent's when
            # it is released and is dropped when it rolls back, so a step that failed
            # leaves no phantom log line or observer call behind.
            self._local.after_commit = [[]]
            c.execute("BEGIN IMMEDIATE")
        else:
            self._local.after_commit.append([])
            c.execute(f"SAVEPOINT sp{depth}")
        self._local.depth = depth + 1
        try:
            yield c
        except BaseException:
            self._local.depth = depth
            if depth == 0:
                c.execute("ROLLBACK")
                self._local.after_commit = [[]]
            else:
                c.execute(f"ROLLBACK TO sp{depth}")
                c.execute(f"RELEASE sp{depth}")
                self._local.after_commit.pop()
            raise
        self._local.depth = depth
        if depth > 0:
            c.execute(f"RELEASE sp{depth}")
            released = self._local.after_commit.pop()
            self._local.after_commit[-1].extend(released)
            return
        try:
            c.execute("COMMIT")
        except BaseException:
            # A COMMIT can fail (a deferred constraint, a full disk): without a ROLLBACK
            # the transaction would stay open and every later BEGIN here would fail.
            if c.in_transaction:
                c.execute("ROLLBACK")
            self._local.after_commit = [[]]
            raise
        callbacks, self._local.after_commit = self._local.after_commit[0], [[]]
        for fn in callbacks:
            fn()

    def after_commit(self, fn) -> None:
        """Run `fn` once the outermost transaction of this thread commits (never if it,
        or the savepoint `fn` was registered in, rolls back); outside a transaction, run
        it now."""
        if getattr(self._local, "depth", 0) == 0:
            fn()
        else:
            self._local.after_commit[-1].append(fn)

    def checkpoint(self) -> None:
        """Fold the WAL into the main file (so its size is the data's size)."""
        self.conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns, self._all = self._all, []
        for c in conns:
            c.close()


def integrity_check(conn: sqlite3.Connection) -> list[str]:
    """SQLite's full integrity check of any connection's database: ['ok'] when sound."""
    return [r[0] for r in conn.execute("PRAGMA integrity_check")]
