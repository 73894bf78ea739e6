"""Change counters per group of tables, so a value read from them can be cached until
they change: `cached(conn, group, what, compute)`.

Each connection gets temporary triggers that count the writes to each group's tables in a
temporary table: the count moves inside the writer's transaction, so a rollback (or a
savepoint's) moves it back too. SQLite's `data_version` moves when another connection
commits. Together they name the state of the group as this connection sees it."""
from __future__ import annotations

import secrets
import sqlite3
from collections import OrderedDict

GROUPS = {"membership": ("hive_meta", "hive_members", "hive_bans"),
          "hivemap": ("hive_state",)}
_CACHE: OrderedDict = OrderedDict()     # (token, group, what) -> (version, value)
# Entries for a few connections in the plugin; a simulated fleet holds thousands of nodes
# in one process (tests/sim), each with its own connection.
MAX_CACHED = 8192


def version(conn: sqlite3.Connection, group: str) -> tuple | None:
    """A key that changes whenever a table of `group` changes; None when it cannot be
    known here (no triggers yet and a transaction is open, or no schema yet)."""
    try:
        return _read(conn, group)
    except sqlite3.OperationalError:
        if conn.in_transaction or not _install(conn):
            return None
        return _read(conn, group)


def _read(conn: sqlite3.Connection, group: str) -> tuple:
    # One statement (asked for every member message): the counter and data_version.
    row = conn.execute("SELECT token, n, (SELECT data_version FROM pragma_data_version) "
                       "FROM temp.change_counts WHERE grp = ?", (group,)).fetchone()
    return row[0], row[1], row[2]


def _install(conn: sqlite3.Connection) -> bool:
    try:
        conn.execute("BEGIN")
        conn.execute("CREATE TEMP TABLE change_counts (grp TEXT PRIMARY KEY, token TEXT NOT NULL, "
                     "n INTEGER NOT NULL)")
        token = secrets.token_hex(8)
        for group, tables in GROUPS.items():
            conn.execute("INSERT INTO temp.change_counts VALUES (?, ?, 0)", (group, token))
            for table in tables:
                for op in ("INSERT", "UPDATE", "DELETE"):
                    conn.execute(f"CREATE TEMP TRIGGER {table}_{op.lower()}_counted AFTER {op} "
                                 f"ON main.{table} BEGIN UPDATE change_counts SET n = n + 1 "
                                 f"WHERE grp = '{group}'; END")
        conn.execute("COMMIT")
        return True
    except sqlite3.OperationalError:          # the schema is not there yet (before migrate)
        conn.execute("ROLLBACK")
        return False


def reset(conn: sqlite3.Connection) -> None:
    """Forget this connection's counters and triggers (after a migration, which may have
    rebuilt a table and its triggers with it); the next look-up installs them again."""
    for tables in GROUPS.values():
        for table in tables:
            for op in ("insert", "update", "delete"):
                conn.execute(f"DROP TRIGGER IF EXISTS temp.{table}_{op}_counted")
    conn.execute("DROP TABLE IF EXISTS temp.change_counts")


def cached(conn: sqlite3.Connection, group: str, what, compute):
    """`compute()`, or what it returned last for this connection if `group` has not
    changed since. The value is shared: callers must not change it."""
    v = version(conn, group)
    if v is None:
        return compute()
    key = (v[0], group, what)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] == v:
        _CACHE.move_to_end(key)
        return hit[1]
    value = compute()
    _CACHE[key] = (v, value)
    _CACHE.move_to_end(key)
    while len(_CACHE) > MAX_CACHED:
        _CACHE.popitem(last=False)
    return value
