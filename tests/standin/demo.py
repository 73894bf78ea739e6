"""What an operator sees: three cl-hive nodes detect their companion plugins, form a hive,
agree on its members, promote a neophyte by a signed vouch, agree on the HiveMap, set zero
fees between members, race for one channel through intent locks, propose a channel open
that waits for the operator (advisor mode), is approved and executes, let the planner
assign one expansion to the richest member, which proposes and (approved) opens it, show
each node's health page (hive-status) and the transition log (hive-events, and
lightningd's readable log lines), and stop. On real
lightningd (on our regtest chain,
tests/chain) when `lightningd` is on PATH, on the stand-in otherwise; the first line says
which (HIVE_TEST_BACKEND=standin forces the stand-in).

Run from the repo root:  python -m tests.standin.demo   (or `make demo`)
Each step is a function in STEPS. Exits non-zero if any step fails or a node recorded a
fault (on lightningd: a BROKEN log line)."""
import json
import shutil
import sys
import threading

from pyln.client import RpcError

from tests.lightningd_fleet import lightningd_missing, standalone_fleet

from .backend import StandinFleet
from .demo_planner import planner

# Short intervals so the demo runs in seconds; the defaults suit a real fleet.
OPTIONS = {"hive-tick-seconds": 1, "hive-sync-interval": 2, "hive-intent-hold-seconds": 5,
           "hive-intent-expire-seconds": 60, "hive-bridge-check-seconds": 2,
           "hive-probation-days": 0}


def start_nodes(demo):
    # l1 runs cl-revenue-ops v2 (it has the `hive` strategy) and CLBoss, l2 cl-revenue-ops
    # v3 (no `hive`: static 0 ppm instead) and CLBoss, l3 no companion at all.
    demo.nodes = demo.fleet.nodes(2, options=[OPTIONS, {**OPTIONS, "revenue-standin-version": "3.0.0"}],
                                  companions=["revenue_ops", "clboss"])
    demo.nodes += demo.fleet.nodes(1, options=OPTIONS)
    demo.target = demo.fleet.nodes(1, plugins=[])[0]    # an outside node, no cl-hive
    for node in demo.nodes:
        print("  %s  id %s  rpc %s" % (node.name, node.id, node.rpc_path))
    print("  %s  id %s  (not in the hive: the channel target later on)"
          % (demo.target.name, demo.target.id))


def companions_detected(demo):
    def bridges():
        views = {n.name: n.rpc.call("hive-status")["bridge"] for n in demo.nodes}
        # Two looks at a missing companion before it counts as absent (it may be starting).
        settled = all(c["detected"] or c["missing_reason"] != "not checked yet"
                      for v in views.values() for c in v.values())
        return views if settled else None
    views = demo.fleet.wait_for(bridges, timeout=15, what="every companion to be looked for")
    for name, view in views.items():
        parts = []
        for comp, c in view.items():
            if c["detected"]:
                fee = c["capabilities"].get("fleet_fee")
                parts.append("%s %s detected (%sbreaker %s)"
                             % (comp, c["version"], "fleet fee %s, " % json.dumps(fee) if fee else "",
                                c["breaker"]["state"]))
            else:
                parts.append("%s missing (%s)" % (comp, c["missing_reason"]))
        print("  %s: %s" % (name, "; ".join(parts)))


def fleet_fees(demo):
    a, b, c = demo.nodes

    def policy(node, peer):
        return node.rpc.call("revenue-policy", {"action": "get", "peer_id": peer.id})["policy"]

    def local_fees(node, peer):
        return [(ch["updates"]["local"]["fee_base_msat"], ch["updates"]["local"]["fee_proportional_millionths"])
                for ch in node.rpc.listpeerchannels(peer.id)["channels"]]
    # On lightningd a policy attempt the bridge's pool refused is retried after a backoff
    # (seen to take ~15 s), hence the long wait.
    demo.fleet.wait_for(lambda: policy(a, b)["strategy"] == "hive" and policy(a, c)["strategy"] == "hive"
                        and policy(b, a)["strategy"] == "static" and policy(b, c)["fee_ppm_target"] == 0
                        and local_fees(c, b) == [(0, 0)], timeout=60, what="zero fees between members")
    for node, peer in ((a, b), (a, c), (b, a), (b, c)):
        p = policy(node, peer)
        print("  %s: lightning-cli revenue-policy get %s...  -> strategy %s, fee_ppm %s"
              % (node.name, peer.id[:12], p["strategy"], p["fee_ppm_target"]))
    print("  %s (no cl-revenue-ops): its channel to %s now has base/ppm %s (setchannel)"
          % (c.name, b.name, local_fees(c, b)[0]))


def connect_nodes(demo):
    a, b, c = demo.nodes
    for x, y in ((a, b), (b, c), (a, c)):
        res = demo.fleet.connect(x, y)
        print("  %s -> %s  (%s, %s)" % (x.name, y.name, res["direction"], res["address"]["port"]))
    demo.fleet.wait_for(lambda: all(len(n.rpc.listpeers()["peers"]) == 2 for n in demo.nodes),
                        timeout=10, what="every node to see two peers")


def genesis(demo):
    a = demo.nodes[0]
    res = a.rpc.call("hive-genesis", {"name": "demo-fleet"})
    print("  %s: lightning-cli hive-genesis demo-fleet" % a.name)
    print("    hive_id %s, admin %s" % (res["hive_id"], a.name))


def invite_and_join(demo):
    a = demo.nodes[0]
    for joiner in demo.nodes[1:]:
        ticket = a.rpc.call("hive-invite", {"peer_id": joiner.id})
        print("  %s: lightning-cli hive-invite peer_id=%s...  -> ticket %s... (%s, expires %d)"
              % (a.name, joiner.id[:12], ticket["ticket"][:24], ticket["tier"],
                 ticket["expires_at"]))
        res = joiner.rpc.call("hive-join", {"ticket": ticket["ticket"]})
        print("  %s: lightning-cli hive-join <ticket>  -> %s as %s (hive of %d)"
              % (joiner.name, res["state"], res.get("tier"), res.get("members", 0)))
        if res["state"] != "joined":
            raise RuntimeError("%s did not join: %s" % (joiner.name, res))


def members_agree(demo):
    names = {n.id: n.name for n in demo.nodes}

    def views():
        return {n.name: sorted((names[m["peer_id"]], m["tier"])
                               for m in n.rpc.call("hive-members")["members"])
                for n in demo.nodes}
    demo.fleet.wait_for(lambda: len({json.dumps(v) for v in views().values()}) == 1
                        and len(next(iter(views().values()))) == 3,
                        timeout=15, what="hive-members to agree on three members")
    for name, view in views().items():
        print("  %s hive-members: %s" % (name, ", ".join("%s=%s" % m for m in view)))


def promotion(demo):
    a, b, c = demo.nodes
    req = b.rpc.call("hive-request-promotion")
    print("  %s: lightning-cli hive-request-promotion  -> proposal %s... (signed, sent to "
          "every member)" % (b.name, req["proposal_id"][:16]))

    def open_at_admin():
        return any(p["proposal_id"] == req["proposal_id"] and p["status"] == "open"
                   for p in a.rpc.call("hive-proposals")["proposals"])
    demo.fleet.wait_for(open_at_admin, timeout=15, what="the request to reach the admin")
    res = a.rpc.call("hive-vouch", {"peer_id": b.id})
    print("  %s: lightning-cli hive-vouch %s...  -> decided %s (quorum: a strict majority "
          "of the 1 voting member besides %s)" % (a.name, b.id[:12], res["decided"], b.name))

    def tiers():
        return {n.name: {m["peer_id"]: m["tier"] for m in n.rpc.call("hive-members")["members"]}
                for n in demo.nodes}
    demo.fleet.wait_for(lambda: all(t[b.id] == "member" for t in tiers().values()),
                        timeout=15, what="every node to verify the vouch and promote l2")
    for n in demo.nodes:
        listed = n.rpc.call("hive-members")["members"]
        view = ", ".join("%s=%s (score %.2f)" % ({x.id: x.name for x in demo.nodes}[m["peer_id"]],
                                                 m["tier"], m["value_add"]["score"])
                         for m in listed)
        print("  %s hive-members: %s" % (n.name, view))


def topology_agrees(demo):
    a, b, c = demo.nodes
    for node, peer, sat in ((a, demo.target, 2_000_000), (b, c, 1_000_000)):
        demo.fleet.fund(node, sat + 500_000)
        demo.fleet.connect(node, peer)
        node.rpc.fundchannel(peer.id, sat)
        print("  %s opened a %d sat channel to %s" % (node.name, sat, peer.name))
    demo.fleet.mine(6)          # confirmed and announced (the stand-in has no chain)

    def hashes():
        return {n.name: n.rpc.call("hive-topology") for n in demo.nodes}
    demo.fleet.wait_for(lambda: len({t["fleet_hash"] for t in hashes().values()}) == 1 and
                        all(len(t["members"]) == 3 and sum(m["capacity_sat"]
                            for m in t["members"]) == 4_000_000 for t in hashes().values()),
                        timeout=20, what="hive-topology to agree on every node")
    names = {n.id: n.name for n in demo.nodes + [demo.target]}
    for name, topo in hashes().items():
        caps = ", ".join("%s v%d %d sat" % (names[m["peer_id"]], m["version"], m["capacity_sat"])
                         for m in topo["members"])
        targets = ", ".join("%s %d sat" % (names.get(t["peer_id"], t["peer_id"][:8]),
                                           t["total_capacity_sat"]) for t in topo["targets"])
        print("  %s hive-topology: fleet_hash %s...  members: %s  external: %s"
              % (name, topo["fleet_hash"][:16], caps, targets))


def intent_race(demo):
    _, b, c = demo.nodes
    target = demo.fleet.nodes(1, plugins=[])[0]
    ids = {}
    for node in (b, c):
        demo.fleet.fund(node, 3_000_000)
        demo.fleet.connect(node, target)

    def announce(node):
        try:
            ids[node.name] = node.rpc.call("hive-intent", {
                "type": "channel_open", "target": target.id,
                "amount_sat": 1_000_000})["intent_id"]
        except RpcError as e:     # the other's intent reached it first
            ids[node.name] = None
            print("  %s: refused: %s" % (node.name, e.error["message"]))
    threads = [threading.Thread(target=announce, args=(n,)) for n in (b, c)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("  %s and %s both ran: lightning-cli hive-intent channel_open %s... 1000000"
          % (b.name, c.name, target.id[:12]))
    contenders = [n for n in (b, c) if ids[n.name]]
    winner = min(contenders, key=lambda n: n.id)

    def done():
        states = {n.name: {i["intent_id"]: i["state"] for i in
                           n.rpc.call("hive-intents")["intents"]} for n in (b, c)}
        return states if states[winner.name][ids[winner.name]] == "executed" else None
    states = demo.fleet.wait_for(done, timeout=30, what="one intent to execute")
    for n in contenders:
        others = [m for m in contenders if m is not n]
        print("  %s: its own intent %s%s" % (
            n.name, states[n.name][ids[n.name]],
            "; the other's %s" % states[n.name][ids[others[0].name]] if others else ""))
    opened = [c2["peer_id"] for c2 in target.rpc.listpeerchannels()["channels"]]
    why = "the lower pubkey won the tie-break" if len(contenders) == 2 else \
        "the only one that could announce"
    print("  %s now has channels from: %s (%s: %s)"
          % (target.name, ", ".join({n.id: n.name for n in (b, c)}.get(p, p[:8])
                                    for p in opened), winner.name, why))
    if len(opened) != 1:
        raise RuntimeError("expected exactly one channel, got %d" % len(opened))


def governance(demo):
    a = demo.nodes[0]
    target = demo.fleet.nodes(1, plugins=[])[0]
    demo.fleet.fund(a, 3_000_000)
    demo.fleet.connect(a, target)
    act = a.rpc.call("hive-propose-action", {"kind": "channel_open", "target": target.id,
                                             "amount_sat": 1_000_000,
                                             "reason": "the fleet has no channel there"})
    print("  %s: lightning-cli hive-propose-action channel_open %s... 1000000"
          % (a.name, target.id[:12]))
    print("    action %s: %s (%s mode: it waits for the operator)"
          % (act["id"], act["state"], act["mode"]))
    if act["state"] != "awaiting_approval":
        raise RuntimeError("expected the action to wait for approval: %s" % act)
    waiting = a.rpc.call("hive-pending-actions", {"state": "awaiting_approval"})["actions"]
    print("  %s: lightning-cli hive-pending-actions awaiting_approval  -> %s"
          % (a.name, ", ".join("%s %s %s sat" % (w["id"], w["kind"], w["amount_sat"])
                               for w in waiting)))
    approved = a.rpc.call("hive-approve-action", {"id": act["id"]})
    print("  %s: lightning-cli hive-approve-action %s  -> %s, intent lock %s..."
          % (a.name, act["id"], approved["state"], (approved["lock_id"] or "")[:20]))
    done = demo.fleet.wait_for(
        lambda: (lambda v: v if v["state"] in ("executed", "failed") else None)(
            a.rpc.call("hive-action", {"id": act["id"]})), timeout=30,
        what="the approved action to execute")
    print("  %s: lightning-cli hive-action %s  -> %s" % (a.name, act["id"], " -> ".join(
        t["to"] for t in done["transitions"])))
    if done["state"] != "executed":
        raise RuntimeError("the approved action failed: %s" % done["failure"])
    print("  %s now has a channel from %s (funding txid %s...)"
          % (target.name, a.name, (done["result"] or {}).get("txid", "?")[:16]))


def show_status(demo):
    for node in demo.nodes:
        status = node.rpc.call("hive-status")
        companions = ", ".join("%s %s" % (name, "breaker " + c["breaker"]["state"]
                                          if c["detected"] else "missing")
                               for name, c in sorted(status["bridge"].items()))
        print("  %s hive-status: version %s, %s mode, tier %s, other members connected %d of %d, "
              "actions waiting %d, oldest member state %ss, outbox %d"
              % (node.name, status["version"], status["governance_mode"],
                 status["hive"]["our_tier"], status["members_connected"],
                 status["members_total"] - 1, status["pending_actions_waiting"],
                 status["oldest_member_state_age_seconds"], status["outbox_backlog"]))
        print("    companions: %s" % companions)
        for w in status["warnings"] or [{"code": "none", "message": "nothing to act on"}]:
            print("    warning %s: %s" % (w["code"], w["message"]))


def show_events(demo):
    a = demo.nodes[0]
    names = {n.id: n.name for n in demo.nodes}
    for machine in ("member_tier", "pending_action"):
        res = a.rpc.call("hive-events", {"machine": machine, "limit": 4})
        print("  %s: lightning-cli hive-events machine=%s limit=4  (newest first)"
              % (a.name, machine))
        for e in res["events"]:
            print("    %d %s %s: %s --%s--> %s" % (e["at"], e["machine"],
                                                  names.get(e["id"], e["id"][:10]),
                                                  e["from"] or "(new)", e["trigger"], e["to"]))
    lines = [m for m in a.plugin_log("plugin.py")
             if m.startswith("fsm.transition machine=pending_action ")]
    print("  the same in lightningd's log, one readable line per event (last 3 of %d):"
          % len(lines))
    for line in lines[-3:]:
        print("    " + (line if len(line) <= 150 else line[:147] + "..."))


def stop_nodes(demo):
    for node in demo.nodes:
        times = node.stop()     # per-plugin exit times are measured on the stand-in only
        print("  %s stopped%s" % (node.name, "; plugin exit after shutdown: " + ", ".join(
            "%s %.3fs" % kv for kv in sorted(times.items())) if times else ""))


STEPS = [
    ("Start three nodes running cl-hive", start_nodes),
    ("Each node's bridge looks for cl-revenue-ops and CLBoss", companions_detected),
    ("Connect them", connect_nodes),
    ("Create a hive on l1", genesis),
    ("Invite l2 and l3; they join through the signed handshake", invite_and_join),
    ("hive-members agrees on all three nodes", members_agree),
    ("l2 asks for promotion; the admin vouches; every node checks the vouch and promotes it",
     promotion),
    ("Channels change; gossip and anti-entropy make hive-topology agree", topology_agrees),
    ("Members' channels carry zero fees (cl-revenue-ops v2, v3, or setchannel)", fleet_fees),
    ("l2 and l3 race for the same channel; the intent lock lets one act", intent_race),
    ("l1 proposes a channel open (advisor mode); the operator approves; it executes",
     governance),
    ("The planner: fleet shares, saturation, and one expansion by the richest member",
     planner),
    ("hive-status of each node: the health page and its warnings", show_status),
    ("hive-events: the transition log, and the same in lightningd's log", show_events),
    ("Stop the fleet gracefully", stop_nodes),
]


class Demo:
    def __init__(self, fleet):
        self.fleet = fleet
        self.nodes = []


def run_steps(demo):
    """Runs STEPS; returns why the first failing one failed, or None."""
    try:
        for i, (title, step) in enumerate(STEPS, 1):
            print("\n[%d/%d] %s" % (i, len(STEPS), title))
            step(demo)
    except Exception as e:  # a CLI: report which step failed and exit non-zero
        return "%s: %s" % (type(e).__name__, e)
    return None


def main() -> int:
    missing = lightningd_missing()
    if missing is None:
        print("Backend: real lightningd (%s) on our regtest chain" % shutil.which("lightningd"))
        with standalone_fleet() as (fleet, problems):
            failed = run_steps(Demo(fleet))
    else:
        print("Backend: the stand-in (%s)" % missing)
        fleet = StandinFleet(seed=1)
        try:
            failed = run_steps(Demo(fleet))
        finally:
            problems = fleet.teardown()
    for p in problems:
        print("PROBLEM: " + p)
    if failed:
        print("\nFAILED: " + failed)
    if failed or problems:
        return 1
    print("\nOK: %d steps" % len(STEPS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
