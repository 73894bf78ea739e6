"""Real damage to a real SQLite file, for the start-up check's tests."""
import os
import sqlite3

from storage.db import Database
from storage.migrations import LATEST


def filled_database(path: str, rows: int = 2000) -> None:
    """A migrated database with enough rows to span many b-tree pages, all in the main
    file (checkpointed), closed."""
    db = Database(path)
    db.migrate()
    with db.transaction() as c:
        c.executemany(
            "INSERT INTO contribution_ledger (peer_id, direction, amount_msat, channel, at) "
            "VALUES (?, 'forwarded', ?, '1x1x1', ?)",
            [(f"02{i:064x}", i, float(i)) for i in range(rows)])
    db.checkpoint()
    db.close()


def scribble_mid_file(path: str) -> None:
    """Overwrite 256 bytes inside a b-tree page, as a bad disk or a stray write would."""
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2 + 100)
        f.write(b"\xde\xad\xbe\xef" * 64)


def scribble_header(path: str) -> None:
    with open(path, "r+b") as f:
        f.write(b"garbage!" * 4)


def newer_schema(path: str) -> None:
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {LATEST + 1}")
    raw.close()
