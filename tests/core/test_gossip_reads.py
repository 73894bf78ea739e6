"""The gossip tick reads lightningd's channels and funds at the heartbeat's cadence or after
a channel notification, not on every tick (they are costly calls on a busy node)."""
import pytest

from handlers.hivemap import gossip
from hive_sides import Side, form_hive
from storage import hivemap

TARGET = "02" + "77" * 32


@pytest.fixture
def pair(tmp_path, clock):
    sides = [Side(n, tmp_path, clock) for n in ("a", "b")]
    form_hive(*sides)
    yield sides
    for s in sides:
        s.close()


def reads(side):
    return sum(m in ("listpeerchannels", "listfunds") for m in side.lightning.calls)


def test_channels_are_read_at_the_sync_cadence_or_after_a_channel_notification(pair, clock):
    a, _ = pair
    before = reads(a)
    gossip.on_tick(a.ctx)
    first = reads(a)
    assert first == before + 2
    for _ in range(5):                     # ticks every few seconds: no new read
        clock.advance(a.config.tick_seconds)
        gossip.on_tick(a.ctx)
    assert reads(a) == first
    # a channel opened: the next tick reads and broadcasts the change
    a.lightning.channels.append({"peer_id": TARGET, "state": "CHANNELD_NORMAL",
                                 "total_msat": 10**9, "fee_base_msat": 1000,
                                 "fee_proportional_millionths": 100})
    gossip.channels_changed(a.ctx)
    gossip.on_tick(a.ctx)
    assert reads(a) == first + 2
    assert hivemap.get(a.db.conn(), a.node_id)["state"]["capacity_sat"] == 1_000_000
    clock.advance(min(a.config.sync_interval, a.config.heartbeat_interval))
    gossip.on_tick(a.ctx)                  # the interval passed: read again
    assert reads(a) == first + 4


def test_a_channel_notification_flags_a_read_for_the_next_tick(tmp_path, clock):
    from handlers.frame import config as cfg
    from handlers.hive import Hive
    from hive_sides import KeyOnlyLightning
    hive = Hive(clock=clock)
    hive.start(cfg.from_init({}, str(tmp_path)), KeyOnlyLightning("a"))
    try:
        hive.on_channel_event("channel_state_changed")
        flagged = hive.command(lambda: hive.ctx.timers.get("channels_changed")).result(5)
    finally:
        hive.stop()
    assert flagged is True
