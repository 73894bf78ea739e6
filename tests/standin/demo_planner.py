"""The demo's planner step: the outside graph grows a node two hops from the fleet; every
member's planner computes the same plan (fleet shares, saturated targets, one open for
the member with the most idle on-chain funds); only that member proposes it; the
operator approves and it opens. On the stand-in or real lightningd, like the rest of
tests/standin/demo.py."""


def planner(demo):
    a, b, c = demo.nodes
    names = {n.id: n.name for n in demo.nodes + [demo.target]}
    # The outside world grows: the earlier target opens to e, e to y. e is then two hops
    # from the fleet with two channels, and no member has a channel to it.
    e, y = demo.fleet.nodes(2, plugins=[])
    names.update({e.id: e.name, y.id: y.name})
    for opener, peer, sats in ((demo.target, e, 700_000), (e, y, 400_000)):
        demo.fleet.fund(opener, sats + 500_000)
        demo.fleet.connect(opener, peer)
        opener.rpc.fundchannel(peer.id, sats)
        print("  %s (outside the hive) opened a %d sat channel to %s" % (opener.name, sats, peer.name))
    # Regtest nodes announce no address, so lightningd's `connect id` (the open's first
    # step) could not find e: the members connect to it by hand.
    for n in demo.nodes:
        demo.fleet.connect(n, e)
    demo.fleet.mine(6)
    demo.fleet.wait_for(lambda: all(len(n.rpc.listchannels(source=e.id)["channels"]) == 2
                                    for n in demo.nodes), timeout=60,
                        what="every member to see e's channels")
    for n in demo.nodes:
        for opt, value in (("hive-planner-min-channel-sat", 100_000),
                           ("hive-planner-max-channel-sat", 500_000),
                           ("hive-planner-reserve-sat", 100_000), ("hive-planner-interval", 5)):
            n.rpc.setconfig(opt, value)
    print("  every member: lightning-cli setconfig hive-planner-interval 5 (and channel sizes "
          "100000..500000 sat, reserve 100000 sat)")

    def proposed():
        acts = {n.name: [x for x in n.rpc.call("hive-pending-actions")["actions"]
                         if x["origin"] == "planner" and x["target"] == e.id] for n in demo.nodes}
        return acts if sum(len(v) for v in acts.values()) else None
    acts = demo.fleet.wait_for(proposed, timeout=60, what="the assignee to propose the open")
    [(assignee, [act])] = [(n, acts[n.name]) for n in demo.nodes if acts[n.name]]
    demo.fleet.wait_for(lambda: all(n.rpc.call("hive-plan")["plan"].get("proposals")
                                    for n in demo.nodes), timeout=30,
                        what="every member to have planned")
    for n in demo.nodes:
        plan = n.rpc.call("hive-plan")["plan"]
        shares = ", ".join("%s %.1f%%%s" % (names.get(t["peer_id"], t["peer_id"][:8]), t["share_pct"],
                                             " saturated" if t["saturated"] else "")
                           for t in plan["targets"])
        props = ", ".join("%s -> %s %d sat%s" % (names[p["assignee"]], names.get(p["target"], "?"),
                                                p["amount_sat"], " (ours)" if p["ours"] else "")
                          for p in plan["proposals"])
        print("  %s hive-plan: fleet share %s; planned: %s" % (n.name, shares or "-", props or "-"))
    topo = a.rpc.call("hive-topology")
    funds = ", ".join("%s %d sat" % (names[m["peer_id"]], m["available_sat"]) for m in topo["members"])
    print("  idle on-chain funds in the HiveMap: %s: %s has the most (ties: the lowest pubkey), "
          "so only it proposed" % (funds, assignee.name))
    assignee.rpc.call("hive-approve-action", {"id": act["id"]})
    print("  %s: lightning-cli hive-approve-action %s (%s, %d sat)"
          % (assignee.name, act["id"], act["kind"], act["amount_sat"]))
    done = demo.fleet.wait_for(
        lambda: (lambda v: v if v["state"] in ("executed", "failed") else None)(
            assignee.rpc.call("hive-action", {"id": act["id"]})), timeout=60,
        what="the planned open to execute")
    if done["state"] != "executed":
        raise RuntimeError("the planned open failed: %s" % done["failure"])
    opened = [names.get(ch["peer_id"], ch["peer_id"][:8]) for ch in e.rpc.listpeerchannels()["channels"]
              if ch["peer_id"] in names and ch["peer_id"] in {n.id for n in demo.nodes}]
    print("  %s now has a channel from: %s (the planned open, executed by the assignee)"
          % (e.name, ", ".join(opened)))
    if opened != [assignee.name]:
        raise RuntimeError("expected one channel from %s, got %s" % (assignee.name, opened))
