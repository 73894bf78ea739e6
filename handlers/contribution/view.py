"""What the operator sees: each member's ratio, volumes and throttle state in
`hive-members`, and the daily series in `hive-contribution` (on the reader thread)."""
from __future__ import annotations

import datetime
import re

from handlers.contribution.flow import first_day, ratio
from handlers.frame import errors
from handlers.frame.clock import unix
from handlers.membership.members import active_members
from storage import contribution as store

NODE_ID = re.compile(r"^0[23][0-9a-f]{64}$")


def annotate(ctx, view: dict) -> dict:
    """Add `contribution` to each member of a members view (None for ourselves)."""
    conn, cfg = ctx.db.conn(), ctx.config()
    totals = store.totals(conn, first_day(ctx))
    states = store.throttles(conn)
    for m in view.get("members", []):
        peer = m["peer_id"]
        if peer == view.get("our_id"):
            m["contribution"] = None
            continue
        fwd, rcv = totals.get(peer, (0, 0))
        state = states.get(peer) or {"throttled": False, "since": None}
        m["contribution"] = {"forwarded_msat": fwd, "received_msat": rcv,
                             "ratio": ratio(fwd, rcv, cfg), "throttled": state["throttled"],
                             "throttled_since": unix(state["since"]) if state["throttled"]
                             else None}
    return view


def series(ctx, peer_id) -> dict:
    """The daily buckets inside the window, for one member or (peer_id unset) all."""
    if peer_id is not None and (not isinstance(peer_id, str) or not NODE_ID.match(peer_id)):
        raise errors.bad_param("peer_id", "expected a node id (66 lowercase hex digits)")
    conn, cfg = ctx.db.conn(), ctx.config()
    since = first_day(ctx)
    rows = store.days(conn, since, peer_id)
    if peer_id is not None and not rows and peer_id not in store.throttles(conn):
        if peer_id not in {m["peer_id"] for m in active_members(conn)}:
            raise errors.bad_param("peer_id", "not a member of the hive and not in the ledger")
    for r in rows:
        r["date"] = _date(r["day"])
    return {"window_days": cfg.contribution_window_days,
            "since": _date(since), "days": rows}


def _date(day: int) -> str:
    return datetime.date.fromordinal(datetime.date(1970, 1, 1).toordinal() + day).isoformat()
