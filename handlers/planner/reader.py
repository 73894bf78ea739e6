"""Reading the public graph for one planner cycle, per node and never whole: each fleet
target's own channels (`listchannels source=`), then the few 2-hop nodes worth a look
(their channels, and `listnodes id=` for an announcement to reach them by), and the
opening feerate. What is kept is a few numbers per node; a target's channel list is
dropped once summed. Runs off the worker (a bridge pool thread) with `call(method,
params)`; any failure or malformed answer ends the read with `{"error": why}`, so the plan
is never made on a partial graph."""
from __future__ import annotations

from pyln.client import RpcError

from handlers.planner.rules import probe_order


class _Malformed(ValueError):
    pass


def _channels(call, node: str) -> list[dict]:
    res = call("listchannels", {"source": node})
    chans = res.get("channels") if isinstance(res, dict) else None
    if not isinstance(chans, list):
        raise _Malformed(f"listchannels source={node}: no channels list")
    return chans


def _summed(chans, node) -> tuple[int, int, list[tuple[str, int]]]:
    """(public sats, channel count, [(peer, sats)]) of a node's channels as its source."""
    total, peers = 0, []
    for c in chans:
        try:
            sats = int(c["amount_msat"]) // 1000
            dest = c["destination"]
        except (KeyError, TypeError, ValueError):
            raise _Malformed(f"listchannels source={node}: a channel without "
                             "amount_msat or destination") from None
        if c.get("source") != node or not isinstance(dest, str):
            raise _Malformed(f"listchannels source={node}: a channel of another source")
        total += sats
        peers.append((dest, sats))
    return total, len(peers), peers


def read_graph(call, targets: list[str], members: set[str], now: float) -> dict:
    try:
        return _read(call, targets, members, now)
    except RpcError as e:
        error = e.error if isinstance(e.error, dict) else {"message": str(e.error)}
        return {"error": f"{e.method}: {error.get('message')}", "read_at": int(now)}
    except OSError as e:          # lightningd's socket is gone
        return {"error": f"rpc socket: {e}", "read_at": int(now)}
    except _Malformed as e:
        return {"error": str(e), "read_at": int(now)}


def _read(call, targets, members, now) -> dict:
    known = set(targets) | set(members)
    out_targets: dict[str, dict] = {}
    links: dict[str, tuple[int, int]] = {}       # 2-hop node -> (targets linked, sats)
    for t in sorted(targets):
        total, count, peers = _summed(_channels(call, t), t)
        out_targets[t] = {"capacity_sat": total, "channels": count}
        for dest, sats in peers:
            if dest not in known:
                n, s = links.get(dest, (0, 0))
                links[dest] = (n + 1, s + sats)
    candidates: dict[str, dict] = {}
    for node in probe_order(links):
        total, count, _ = _summed(_channels(call, node), node)
        listed = call("listnodes", {"id": node})
        nodes = listed.get("nodes") if isinstance(listed, dict) else None
        if not isinstance(nodes, list):
            raise _Malformed(f"listnodes id={node}: no nodes list")
        # A node announcement (with its addresses) is how the assignee reaches it.
        announced = any(isinstance(n, dict) and n.get("nodeid") == node
                        and "last_timestamp" in n for n in nodes)
        candidates[node] = {"capacity_sat": total, "channels": count, "announced": announced}
    rates = call("feerates", {"style": "perkw"})
    perkw = rates.get("perkw") if isinstance(rates, dict) else None
    opening = perkw.get("opening") if isinstance(perkw, dict) else None
    return {"read_at": int(now), "targets": out_targets, "candidates": candidates,
            "feerate_perkw": opening if type(opening) is int else None,
            "reads": 1 + len(out_targets) + 2 * len(candidates)}
