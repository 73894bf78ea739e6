"""`hive-events`: the transition log, newest first, filtered by machine kind, instance,
peer and time. What `hive-log-retention-days` pruned is gone; `kept_since` says from when
the log is complete."""
from __future__ import annotations

from handlers.frame.errors import bad_param
from handlers.wire.messages import node_id
from machines import SPECS
from storage import transition_log

DEFAULT_LIMIT, MAX_LIMIT = 50, 1000
MAX_ID_LENGTH = 200


def _int(name: str, value, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise bad_param(name, f"expected an integer from {low} to {high}")
    return value


def check(machine, instance_id, peer_id, since, limit) -> dict:
    """The query's filters from the operator's parameters, or -32602 naming the first bad one."""
    if machine is not None and machine not in SPECS:
        raise bad_param("machine", "expected one of " + "|".join(sorted(SPECS)))
    if instance_id is not None and (not isinstance(instance_id, str) or not instance_id
                                    or len(instance_id) > MAX_ID_LENGTH):
        raise bad_param("id", f"expected an instance id (1 to {MAX_ID_LENGTH} characters)")
    if peer_id is not None:
        try:
            node_id(peer_id)
        except ValueError as e:
            raise bad_param("peer_id", str(e)) from None
    if since is not None:
        _int("since", since, 0, 2**40)
    limit = DEFAULT_LIMIT if limit is None else _int("limit", limit, 1, MAX_LIMIT)
    return {"kind": machine, "instance_id": instance_id, "peer_id": peer_id, "since": since,
            "limit": limit}


def events(ctx, machine=None, instance_id=None, peer_id=None, since=None, limit=None) -> dict:
    filters = check(machine, instance_id, peer_id, since, limit)
    conn = ctx.db.conn()
    rows = transition_log.query(conn, **filters)
    return {
        "events": [{"seq": r["seq"], "at": int(r["at"]), "machine": r["kind"],
                    "id": r["instance_id"], "trigger": r["trigger"], "from": r["source"],
                    "to": r["dest"], "peer_id": r["peer_id"], "context": r["context"]}
                   for r in rows],
        "limit": filters["limit"],
        "retention_days": ctx.config().log_retention_days,
        "kept_since": int(transition_log.cutoff(conn)),
    }
