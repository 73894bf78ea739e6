"""Real damage to a real SQLite file, for the start-up check's tests."""
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


def scribble_mid_file(path: str, page_size: int = 4096) -> None:
    """Overwrite the cell pointers of one ledger leaf page (the one holding row 1000), as a
    bad disk or a stray write would: the page is still there, its insides are garbage."""
    with open(path, "r+b") as f:
        data = f.read()
        page = data.index(f"02{1000:064x}".encode()) // page_size
        f.seek(page * page_size + 8)
        f.write(b"\xde\xad\xbe\xef" * 16)


def scribble_header(path: str) -> None:
    with open(path, "r+b") as f:
        f.write(b"garbage!" * 4)


def newer_schema(path: str) -> None:
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {LATEST + 1}")
    raw.close()
