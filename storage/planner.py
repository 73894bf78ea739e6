"""The planner's rows: the last plan (one row; its time is the cycle timer) and the
targets held saturated, with whether our CLBoss was told."""
from __future__ import annotations

import json
import sqlite3


def last_plan(conn: sqlite3.Connection) -> tuple[float, dict] | None:
    row = conn.execute("SELECT computed_at, plan FROM planner_plan WHERE id = 1").fetchone()
    return None if row is None else (row[0], json.loads(row[1]))


def store_plan(conn: sqlite3.Connection, computed_at: float, plan: dict) -> None:
    conn.execute("INSERT INTO planner_plan (id, computed_at, plan) VALUES (1, ?, ?) "
                 "ON CONFLICT (id) DO UPDATE SET computed_at = excluded.computed_at, "
                 "plan = excluded.plan", (computed_at, json.dumps(plan, sort_keys=True)))


def saturation_rows(conn: sqlite3.Connection) -> dict[str, dict]:
    return {r[0]: {"share_pct": r[1], "since": r[2], "tagged": bool(r[3]),
                   "released": bool(r[4])} for r in conn.execute(
        "SELECT target, share_pct, since, tagged, released FROM planner_saturation "
        "ORDER BY target")}


def saturated(conn: sqlite3.Connection) -> set[str]:
    """Targets held saturated now (not those released and awaiting their tag's removal)."""
    return {r[0] for r in conn.execute(
        "SELECT target FROM planner_saturation WHERE released = 0")}


def is_saturated(conn: sqlite3.Connection, target: str) -> bool:
    return conn.execute("SELECT 1 FROM planner_saturation WHERE target = ? AND released = 0",
                        (target,)).fetchone() is not None


def hold(conn: sqlite3.Connection, target: str, share_pct: float, now: float) -> None:
    """Saturated (again): a target released but not yet untagged keeps its tag."""
    conn.execute("INSERT INTO planner_saturation (target, share_pct, since) VALUES (?, ?, ?) "
                 "ON CONFLICT (target) DO UPDATE SET share_pct = excluded.share_pct, "
                 "released = 0", (target, share_pct, now))


def release(conn: sqlite3.Connection, target: str, share_pct: float) -> None:
    conn.execute("UPDATE planner_saturation SET released = 1, share_pct = ? WHERE target = ?",
                 (share_pct, target))


def mark_tagged(conn: sqlite3.Connection, target: str, tagged: bool) -> None:
    conn.execute("UPDATE planner_saturation SET tagged = ? WHERE target = ?",
                 (int(tagged), target))


def forget(conn: sqlite3.Connection, target: str) -> None:
    """Released and untagged: nothing is held for it any more."""
    conn.execute("DELETE FROM planner_saturation WHERE target = ? AND released = 1", (target,))


def planner_opens(conn: sqlite3.Connection, states: tuple[str, ...],
                  since: float = float("-inf")) -> list[dict]:
    """The planner's own channel_open actions in `states` created at or after `since`."""
    marks = ", ".join("?" for _ in states)
    return [{"action_id": r[0], "target": r[1], "state": r[2]} for r in conn.execute(
        f"""SELECT action_id, target, state FROM pending_actions
            WHERE action_type = 'channel_open' AND origin = 'planner'
              AND state IN ({marks}) AND created_at >= ? ORDER BY created_at""",
        (*states, since))]
