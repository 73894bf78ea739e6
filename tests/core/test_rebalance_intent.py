"""A rebalance intent carries what `revenue-rebalance` needs: `from_channel`, `to_channel`
(ours to the target) and `max_fee_sats`, in its signed record. hive-intent names the bad
parameter; a peer's INTENT whose rebalance fields do not fit its type is refused and
changes nothing; other intents' records carry none of them."""
import pytest
from pyln.client import RpcException
from structlog.testing import capture_logs

from handlers.intents import locks as intents
from handlers.wire.framing import MsgType, encode
from intent_sides import TARGET, make_fleet, refusals, signed_intent  # noqa: F401
from hive_sides import pump
from storage import hive as hive_store

pytestmark = pytest.mark.usefixtures("every_refusal_logged")

OTHER = "02" + "6b" * 32


def channels(side):
    side.lightning.channels = [
        {"peer_id": TARGET, "short_channel_id": "1x1x1", "state": "CHANNELD_NORMAL"},
        {"peer_id": OTHER, "short_channel_id": "2x2x2", "state": "CHANNELD_NORMAL"},
        {"peer_id": OTHER, "short_channel_id": "3x3x3", "state": "ONCHAIN"}]


GOOD = {"from_channel": "2x2x2", "to_channel": "1x1x1", "max_fee_sats": 25}


@pytest.mark.parametrize("kind,amount,over,message", [
    ("rebalance", 50_000, {"from_channel": None}, "from_channel: required for rebalance"),
    ("rebalance", 50_000, {"to_channel": None}, "to_channel: required for rebalance"),
    ("rebalance", 50_000, {"max_fee_sats": None}, "max_fee_sats: required for rebalance"),
    ("rebalance", 50_000, {"from_channel": "2:2:2"}, "from_channel: expected a short channel id"),
    ("rebalance", 50_000, {"to_channel": "1x1x65536"}, "to_channel: expected a short channel id"),
    ("rebalance", 50_000, {"to_channel": 7}, "to_channel: expected a short channel id"),
    ("rebalance", 50_000, {"max_fee_sats": -1}, "max_fee_sats: expected an integer from 0"),
    ("rebalance", 50_000, {"max_fee_sats": "25"}, "max_fee_sats: expected an integer from 0"),
    ("rebalance", 50_000, {"to_channel": "2x2x2", "from_channel": "1x1x1"},
     "to_channel: not an open channel of ours to " + TARGET),
    ("rebalance", 50_000, {"to_channel": "9x9x9"}, "to_channel: not an open channel of ours"),
    ("rebalance", 50_000, {"from_channel": "8x8x8"}, "from_channel: not an open channel of ours"),
    ("rebalance", 50_000, {"from_channel": "3x3x3"}, "from_channel: not an open channel of ours"),
    ("rebalance", 50_000, {"from_channel": "1x1x1"},
     "to_channel: the same channel as from_channel"),
    ("channel_open", 100_000, {"from_channel": "2x2x2", "to_channel": None, "max_fee_sats": None},
     "from_channel: not used by channel_open"),
    ("channel_open", 100_000, {"from_channel": None, "max_fee_sats": None},
     "to_channel: not used by channel_open"),
    ("channel_open", 100_000, {"from_channel": None, "to_channel": None, "max_fee_sats": 5},
     "max_fee_sats: not used by channel_open"),
])
def test_hive_intent_names_the_bad_rebalance_parameter(make_fleet, kind, amount, over, message):
    a, = make_fleet(["a"])
    channels(a)
    before = a.snapshot()
    with pytest.raises(RpcException) as err:
        intents.announce(a.ctx, kind, TARGET, amount, **{**GOOD, **over})
    assert err.value.message.startswith(message)
    assert a.snapshot() == before


def test_a_rebalance_carries_its_channels_and_fee_cap_to_every_member(make_fleet):
    a, b = make_fleet(["a", "b"])
    channels(a)
    lock_id = intents.announce(a.ctx, "rebalance", TARGET, 50_000, **GOOD)["lock_id"]
    pump(a, b)
    for side in (a, b):
        intent = side.dispatcher.load("intent_lock", lock_id).data["intent"]
        assert {k: intent[k] for k in GOOD} == GOOD
    assert b.dispatcher.load("intent_lock", lock_id).state == "pending"
    # Other intents' signed records are as before: no rebalance keys at all.
    other = intents.announce(a.ctx, "channel_open", TARGET, 100_000)["lock_id"]
    pump(a, b)
    assert not set(GOOD) & set(b.dispatcher.load("intent_lock", other).data["intent"])


@pytest.mark.parametrize("over,reason", [
    ({"intent_type": "rebalance", "amount_sat": 50_000},
     "from_channel is required for rebalance"),
    ({"intent_type": "rebalance", "amount_sat": 50_000, "from_channel": "2x2x2",
      "to_channel": "1x1x1"}, "max_fee_sats is required for rebalance"),
    ({"intent_type": "channel_open", "amount_sat": 100_000, "from_channel": "2x2x2"},
     "from_channel is not used by channel_open"),
    ({"max_fee_sats": 5}, "max_fee_sats is not used by channel_open"),
    ({"intent_type": "rebalance", "amount_sat": 50_000, **GOOD, "to_channel": "2x2x2"},
     "to_channel is the same channel as from_channel"),
    ({"intent_type": "rebalance", "amount_sat": 50_000, **GOOD, "from_channel": "2x2"},
     "malformed: intent: from_channel: expected a short channel id <block>x<tx>x<out>"),
    ({"intent_type": "rebalance", "amount_sat": 50_000, **GOOD, "max_fee_sats": -5},
     "malformed: intent: max_fee_sats: expected an integer from 0 to 2100000000000000"),
])
def test_a_peer_intent_whose_rebalance_fields_do_not_fit_is_refused(make_fleet, over, reason):
    a, b = make_fleet(["a", "b"])
    hive_id = hive_store.get_meta(a.db.conn())["hive_id"]
    before = b.snapshot()
    with capture_logs() as logs:
        b.receive(a, encode(MsgType.INTENT, signed_intent(a, hive_id, **over)))
    assert refusals(logs) == [reason]
    assert b.snapshot() == before


def test_a_peer_rebalance_with_its_fields_is_recorded(make_fleet):
    a, b = make_fleet(["a", "b"])
    hive_id = hive_store.get_meta(a.db.conn())["hive_id"]
    body = signed_intent(a, hive_id, intent_type="rebalance", amount_sat=50_000, **GOOD)
    with capture_logs() as logs:
        b.receive(a, encode(MsgType.INTENT, body))
    assert refusals(logs) == []
    lock_id = f"{a.node_id}:{body['intent']['intent_id']}"
    assert b.dispatcher.load("intent_lock", lock_id).data["intent"] == body["intent"]
