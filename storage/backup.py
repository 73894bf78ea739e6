"""A copy of the live database through SQLite's online backup API: consistent (one read
transaction over every page) while cl-hive keeps writing, and never over an existing file."""
from __future__ import annotations

import os
import sqlite3


def to_file(conn: sqlite3.Connection, destination: str) -> dict:
    """Copy the database behind `conn` to `destination`, a file this call creates
    (O_EXCL: refused if it exists, even if it appears meanwhile). Returns what it wrote."""
    fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)     # an empty file is an empty database to SQLite
    target = sqlite3.connect(destination, isolation_level=None)
    try:
        # pages=-1: every page in one step, so the copy is one consistent snapshot; in WAL
        # mode our writers carry on meanwhile.
        conn.backup(target, pages=-1)
        version = target.execute("PRAGMA user_version").fetchone()[0]
        check = target.execute("PRAGMA quick_check").fetchone()[0]
    except BaseException:
        target.close()
        os.unlink(destination)       # no half-written backup is left behind
        raise
    target.close()
    return {"destination": destination, "bytes": os.path.getsize(destination),
            "schema_version": version, "check": check}
