"""A channel's life on the chain, the same on the stand-in and on real lightningd: funded,
waiting for lockin without a short channel id, usable once its funding confirms (regtest's
mindepth is 1), announced to the network at 6 confirmations."""


def chan(node, peer):
    [c] = node.rpc.listpeerchannels(peer.id)["channels"]
    return c


def test_a_funded_channel_locks_in_after_a_block_and_is_announced_at_six(fleet):
    a, b = fleet.nodes(2, plugins=[])
    fleet.fund(a, 500_000)
    fleet.connect(a, b)
    res = a.rpc.fundchannel(b.id, 200_000)
    assert set(res) >= {"tx", "txid", "outnum", "channel_id", "channel_type"} and "mindepth" not in res
    for x, y in ((a, b), (b, a)):
        c = chan(x, y)
        assert c["state"] == "CHANNELD_AWAITING_LOCKIN" and "short_channel_id" not in c, c
    height = a.rpc.getinfo()["blockheight"]
    fleet.mine(1)
    fleet.wait_for(lambda: chan(a, b)["state"] == chan(b, a)["state"] == "CHANNELD_NORMAL", timeout=30,
                   what="lockin on both sides")
    scid = chan(a, b)["short_channel_id"]
    assert scid == chan(b, a)["short_channel_id"] and scid.startswith("%dx" % (height + 1))
    fleet.mine(4)
    assert b.rpc.listchannels(scid)["channels"] == []        # 5 confirmations: not yet announced
    fleet.mine(1)
    fleet.wait_for(lambda: len(b.rpc.listchannels(scid)["channels"]) == 2, timeout=30,
                   what="both directions of the channel announced")
    assert {c["source"] for c in b.rpc.listchannels(scid)["channels"]} == {a.id, b.id}
