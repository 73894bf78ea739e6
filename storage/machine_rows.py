"""Rows of machine instances: each machine kind lives in its own table with the shared
machine columns (see `migrations.MACHINE_COLUMNS`) beside its domain columns."""
from __future__ import annotations

import json
import sqlite3

# kind -> (table, key column). Storage knows kinds only by name; it imports no machine.
MACHINE_TABLES: dict[str, tuple[str, str]] = {
    "handshake_joiner": ("handshake_sessions", "session_id"),
    "handshake_admin": ("handshake_sessions", "session_id"),
    "member_tier": ("hive_members", "peer_id"),
    "intent_lock": ("intent_locks", "lock_id"),
    "pending_action": ("pending_actions", "action_id"),
    "circuit_breaker": ("circuit_breakers", "name"),
    "contribution_throttle": ("contribution_throttles", "peer_id"),
}

_STATE_FIELDS = ("state", "deadline", "deadline_trigger", "created_at", "state_since",
                 "version", "data")


def all_states(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(kind, state) of every machine instance in every machine table."""
    out = []
    for table in dict.fromkeys(t for t, _ in MACHINE_TABLES.values()):
        out += [(r[0], r[1]) for r in conn.execute(f"SELECT kind, state FROM {table}")]
    return out


class StaleWrite(RuntimeError):
    """The row changed since it was read; the write was not applied."""


def _table(kind: str) -> tuple[str, str]:
    try:
        return MACHINE_TABLES[kind]
    except KeyError:
        raise ValueError(f"no table for machine kind {kind!r}") from None


def load(conn: sqlite3.Connection, kind: str, instance_id: str) -> dict | None:
    table, key = _table(kind)
    row = conn.execute(
        f"SELECT {', '.join(_STATE_FIELDS)} FROM {table} WHERE {key} = ? AND kind = ?",
        (instance_id, kind)).fetchone()
    if row is None:
        return None
    out = dict(row)
    out["data"] = json.loads(out["data"])
    return out


def insert(conn: sqlite3.Connection, kind: str, instance_id: str, fields: dict,
           domain: dict | None = None) -> None:
    """Create the row; `domain` fills the table's own columns (e.g. an intent's target)."""
    table, key = _table(kind)
    values = {key: instance_id, "kind": kind, **(domain or {}),
              **{f: fields[f] for f in _STATE_FIELDS if f != "data"},
              "data": json.dumps(fields["data"], sort_keys=True)}
    cols = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", tuple(values.values()))


def update(conn: sqlite3.Connection, kind: str, instance_id: str, fields: dict,
           expected_version: int) -> None:
    """Write the machine columns, only if nobody wrote the row since it was read."""
    table, key = _table(kind)
    cur = conn.execute(
        f"""UPDATE {table} SET state = ?, deadline = ?, deadline_trigger = ?,
                state_since = ?, data = ?, version = version + 1
            WHERE {key} = ? AND kind = ? AND version = ?""",
        (fields["state"], fields["deadline"], fields["deadline_trigger"],
         fields["state_since"], json.dumps(fields["data"], sort_keys=True),
         instance_id, kind, expected_version))
    if cur.rowcount != 1:
        raise StaleWrite(f"{kind} {instance_id}: row changed or vanished since it was read")


def park(conn: sqlite3.Connection, kind: str, instance_id: str, why: dict) -> bool:
    """Clear a row's deadline and keep `why` under `parked` in its data: a row the
    scheduler could not fire, set aside instead of retried on every tick. Works on rows
    the current machines cannot load (a state a later release no longer declares)."""
    table, key = _table(kind)
    row = conn.execute(f"SELECT data FROM {table} WHERE {key} = ? AND kind = ?",
                       (instance_id, kind)).fetchone()
    if row is None:
        return False
    try:
        data = json.loads(row["data"])
    except ValueError:
        data = {"unreadable_data": row["data"]}
    if not isinstance(data, dict):
        data = {"unreadable_data": row["data"]}
    data["parked"] = why
    conn.execute(f"""UPDATE {table} SET deadline = NULL, deadline_trigger = NULL, data = ?,
                         version = version + 1 WHERE {key} = ? AND kind = ?""",
                 (json.dumps(data, sort_keys=True, default=str), instance_id, kind))
    return True


def due(conn: sqlite3.Connection, now: float, limit: int = 500) -> list[tuple[str, str, str]]:
    """(kind, id, trigger) of every instance whose deadline has passed, oldest first."""
    rows = []
    for table, key in sorted(set(MACHINE_TABLES.values())):
        rows += conn.execute(
            f"""SELECT deadline, kind, {key} AS id, deadline_trigger FROM {table}
                WHERE deadline IS NOT NULL AND deadline <= ? ORDER BY deadline LIMIT ?""",
            (now, limit)).fetchall()
    rows.sort(key=lambda r: r["deadline"])
    return [(r["kind"], r["id"], r["deadline_trigger"]) for r in rows[:limit]]


def counts(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
    """Number of instances per kind and state."""
    out: dict[str, dict[str, int]] = {}
    for table, _key in sorted(set(MACHINE_TABLES.values())):
        for r in conn.execute(f"SELECT kind, state, COUNT(*) AS n FROM {table} "
                              "GROUP BY kind, state ORDER BY kind, state"):
            out.setdefault(r["kind"], {})[r["state"]] = r["n"]
    return out


def versions(conn: sqlite3.Connection) -> list[tuple[str, str, str, int]]:
    """(kind, id, state, version) of every instance: any write to one changes its tuple."""
    rows = []
    for table, key in sorted(set(MACHINE_TABLES.values())):
        rows += [(r["kind"], r["id"], r["state"], r["version"]) for r in conn.execute(
            f"SELECT kind, {key} AS id, state, version FROM {table} ORDER BY kind, {key}")]
    return rows
