"""The planner's pure rules: the fleet's share of each target and its saturation with
hysteresis, the expansion candidates and their ranking, the assignment of opens to the
members with the most idle funds, and the gates. Every member computes the same plan from
the same HiveMap (fleet hash) and graph: nothing here reads a clock, a database or our
own identity, except to say whether we are the assignee."""
from __future__ import annotations

from dataclasses import dataclass

# How many 2-hop nodes are read in full (listchannels source=, listnodes id=) per cycle:
# the graph is read per node, never whole.
MAX_PROBED = 16
# A candidate needs at least this many public channels to count as well connected.
MIN_CANDIDATE_CHANNELS = 2
SHOWN_CANDIDATES = 10


@dataclass(frozen=True)
class Settings:
    saturation_pct: int
    release_pct: int
    min_channel_sat: int
    max_channel_sat: int
    reserve_sat: int
    max_feerate_perkw: int
    stale_after: int            # seconds after which a member's HiveMap state is stale

    @classmethod
    def of(cls, config) -> "Settings":
        # A member broadcasts at least once per heartbeat; three missed ones is stale.
        return cls(config.saturation_pct, config.saturation_release_pct,
                   config.planner_min_channel_sat, config.planner_max_channel_sat,
                   config.planner_reserve_sat, config.max_expansion_feerate_perkw,
                   3 * config.heartbeat_interval)


def fleet_capacity(states, members) -> dict[str, int]:
    """Sats of the fleet's channels per external peer, from the members' HiveMap states."""
    out: dict[str, int] = {}
    for s in states:
        if s["peer_id"] not in members:
            continue
        for p in s.get("peers", ()):
            if p["peer_id"] not in members:
                out[p["peer_id"]] = out.get(p["peer_id"], 0) + int(p["capacity_sat"])
    return out


def share_pct(fleet_sat: int, public_sat: int) -> float:
    """The fleet's share of a target, in percent. The fleet's own channels may be private
    (not in the public graph): the total is never taken below the fleet's part."""
    total = max(public_sat, fleet_sat)
    return 0.0 if total == 0 else round(100.0 * fleet_sat / total, 3)


def saturated(fleet_sat: int, public_sat: int, was: bool, settings: Settings) -> bool:
    """At or above the saturation percent; once saturated, until below the release
    percent (so a target near the mark does not flap). Integer arithmetic: 20% of 1000
    is exactly 200."""
    total = max(public_sat, fleet_sat)
    if total == 0:
        return False
    pct = settings.release_pct if was else settings.saturation_pct
    return fleet_sat * 100 >= pct * total


def probe_order(links: dict[str, tuple[int, int]], limit: int = MAX_PROBED) -> list[str]:
    """Which 2-hop nodes to read in full: those linked to the most fleet targets, then by
    the sats of those links, then lowest id. `links`: node -> (targets, sats)."""
    return sorted(links, key=lambda n: (-links[n][0], -links[n][1], n))[:limit]


def rank_candidates(nodes: dict[str, dict], excluded: set[str]) -> list[dict]:
    """Candidates for a new channel, best first: public nodes with no fleet channel (the
    fleet's share of them is 0), announced (so they can be reached), with at least
    MIN_CANDIDATE_CHANNELS channels, not banned, not recently failed, ranked by public
    capacity, then channel count, then lowest id."""
    out = [{"peer_id": n, "capacity_sat": v["capacity_sat"], "channels": v["channels"]}
           for n, v in nodes.items()
           if n not in excluded and v.get("announced")
           and v["channels"] >= MIN_CANDIDATE_CHANNELS]
    return sorted(out, key=lambda c: (-c["capacity_sat"], -c["channels"], c["peer_id"]))


def funds_order(states, members, settings: Settings) -> list[tuple[str, int]]:
    """Members that can open a planned channel, richest first (ties: lowest pubkey), with
    the channel size: idle funds above the reserve, at most the maximum size."""
    out = []
    for s in states:
        if s["peer_id"] not in members:
            continue
        spare = int(s["available_sat"]) - settings.reserve_sat
        if spare >= settings.min_channel_sat:
            out.append((s["peer_id"], spare))
    out.sort(key=lambda m: (-m[1], m[0]))
    return [(m, min(spare, settings.max_channel_sat)) for m, spare in out]


def expansion_blockers(states_by_id: dict, members, now: float, settings: Settings
                       ) -> list[str]:
    """Why no member may be assigned an open on this data, if any: a member's state is
    missing or stale, or lacks its funds (then the richest member is not known)."""
    why = []
    for m in sorted(members):
        s = states_by_id.get(m)
        if s is None:
            why.append(f"no HiveMap state of member {m}")
        elif now - s["timestamp"] > settings.stale_after:
            why.append(f"the HiveMap state of member {m} is stale "
                       f"({int(now - s['timestamp'])} s old)")
        elif type(s.get("available_sat")) is not int:
            why.append(f"the HiveMap state of member {m} lacks its on-chain funds")
    return why


def compute(*, members: set[str], states: list[dict], graph: dict, previously: set[str],
            excluded: set[str], now: float, settings: Settings, stable: bool = True) -> dict:
    """The plan for one cycle. `graph` is what the read brought (`reader.read_graph`), or
    `{"error": why}`; `previously` the targets held saturated; `excluded` the nodes no
    open may go to (banned, recently failed); `stable`, whether the fleet hash is the one
    the previous cycle saw. Returns the plan without our own acts."""
    states_by_id = {s["peer_id"]: s for s in states if s["peer_id"] in members}
    plan = {"members": len(members), "graph_read_at": graph.get("read_at"),
            "skipped": None, "notes": [], "targets": [], "saturated": sorted(previously),
            "candidates": [], "feerate_perkw": graph.get("feerate_perkw"), "proposals": []}
    if graph.get("error"):
        plan["skipped"] = f"graph read failed: {graph['error']}; nothing changed"
        return plan
    blockers = expansion_blockers(states_by_id, members, now, settings)
    fleet = fleet_capacity(states_by_id.values(), members)
    held = set()
    for t in sorted(fleet):
        public = graph["targets"].get(t)
        if public is None:      # read narrowed to fewer targets: keep its old verdict
            plan["notes"].append(f"target {t} not read: saturation kept as it was")
            if t in previously:
                held.add(t)
            continue
        was = t in previously
        now_sat = saturated(fleet[t], public["capacity_sat"], was, settings)
        if was and not now_sat and blockers:
            # A release on partial data could let CLBoss crowd a target: held.
            now_sat = True
            plan["notes"].append(f"target {t} not released: HiveMap incomplete")
        if now_sat:
            held.add(t)
        plan["targets"].append({
            "peer_id": t, "fleet_capacity_sat": fleet[t],
            "public_capacity_sat": public["capacity_sat"],
            "share_pct": share_pct(fleet[t], public["capacity_sat"]), "saturated": now_sat,
            "change": ("saturated" if now_sat and not was else
                       "released" if was and not now_sat else None)})
    # A target no member holds a channel to any more is released (share 0).
    for t in sorted(previously - set(fleet)):
        if blockers:
            held.add(t)
            plan["notes"].append(f"target {t} not released: HiveMap incomplete")
        else:
            plan["targets"].append({"peer_id": t, "fleet_capacity_sat": 0,
                                    "public_capacity_sat": None, "share_pct": 0.0,
                                    "saturated": False, "change": "released"})
    plan["saturated"] = sorted(held)
    candidates = rank_candidates(graph.get("candidates", {}),
                                 excluded | set(fleet) | set(members))
    plan["candidates"] = candidates[:SHOWN_CANDIDATES]
    if blockers:
        plan["notes"] += blockers
        plan["expansion"] = "skipped: " + blockers[0]
        return plan
    funded = funds_order(states_by_id.values(), members, settings)
    # At most one open per member per cycle: the best candidate to the richest member,
    # the next to the next.
    pairs = list(zip(candidates, funded))
    feerate = graph.get("feerate_perkw")
    gate = None
    if not stable:
        # Members run their cycles at different moments: an assignment is only acted on
        # when the HiveMap did not change over a whole interval, so that every member
        # computed it from the same states.
        gate = "the HiveMap changed since the previous cycle: waiting for it to settle"
    elif type(feerate) is not int:
        gate = "the opening feerate is unknown"
    elif feerate > settings.max_feerate_perkw:
        gate = (f"opening feerate {feerate} perkw is above "
                f"hive-max-expansion-feerate-perkw ({settings.max_feerate_perkw})")
    plan["proposals"] = [{"target": c["peer_id"], "assignee": m, "amount_sat": amount,
                          "held": gate} for c, (m, amount) in pairs]
    plan["expansion"] = ("no candidate" if not candidates else
                         "no member has funds above its reserve for the minimum channel"
                         if not funded else f"held: {gate}" if gate else "assigned")
    return plan


def deterministic_part(plan: dict) -> dict:
    """What every member computes alike from the same HiveMap and graph (the feerate and
    what each member did with the plan are its own)."""
    return {k: plan[k] for k in ("members", "targets", "saturated", "candidates")} | {
        "proposals": [{k: p[k] for k in ("target", "assignee", "amount_sat")}
                      for p in plan["proposals"]]}
