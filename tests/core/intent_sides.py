"""For intent-lock tests: a fleet of whole nodes (real SQLite, real signatures, no
network; see hive_sides) and the small steps the tests take with it."""
import random

import pytest

from handlers.intents import execution
from handlers.intents import locks as intents
from handlers.wire import signing
from handlers.wire.framing import MsgType, encode
from hive_sides import Side, form_hive, pump

TARGET = "03" + "5a" * 32


@pytest.fixture
def make_fleet(tmp_path, clock):
    made = []

    def make(names):
        sides = [Side(n, tmp_path, clock) for n in names]
        form_hive(*sides)
        made.extend(sides)
        return sides
    yield make
    for s in made:
        s.close()


def state(side, lock_id):
    inst = side.dispatcher.load("intent_lock", lock_id)
    return inst and inst.state


def settle(sides, clock, seconds):
    clock.advance(seconds)
    for s in sides:
        s.dispatcher.fire_due()
        execution.on_tick(s.ctx)
    pump(*sides)


def tick(side):
    side.dispatcher.fire_due()
    execution.on_tick(side.ctx)


def refusals(logs):
    return [e["reason"] for e in logs if e["event"] == "intent.refused"]


AMOUNT = 100_000


def announce(side, target=TARGET, kind="channel_open"):
    """The lock id ("<initiator>:<intent_id>") of a new channel_open intent."""
    return intents.announce(side.ctx, kind, target, AMOUNT)["lock_id"]


def funded(side, target=TARGET) -> int:
    """Channels `side` opened to `target` (what executing a channel_open intent does)."""
    return side.lightning.funded.count(target)


def bare(lock_id):
    """The intent id in a lock id, as messages carry it."""
    return lock_id.split(":")[1]


def ordered(sides):
    return sorted(sides, key=lambda s: s.node_id)


def signed_intent(side, hive_id, signer=None, **over):
    """An INTENT body from `side` (signed by `signer`, default itself)."""
    intent = {"intent_id": "%032x" % random.getrandbits(128), "intent_type": "channel_open",
              "target": TARGET, "initiator": side.node_id, "created_at": side.ctx.now(),
              "amount_sat": AMOUNT, "hold_seconds": 60, "expire_seconds": 600, **over}
    return {"intent": intent,
            "sig": signing.sign((signer or side).lightning, hive_id, "INTENT", intent)}


def abort_msg(sender, hive_id, intent_id, now):
    body = {"intent_id": intent_id, "initiator": sender.node_id, "aborted_at": now,
            "reason": "x"}
    return encode(MsgType.INTENT_ABORT, {
        "abort": body, "sig": signing.sign(sender.lightning, hive_id, "INTENT_ABORT", body)})


def row(side, initiator, intent_id):
    """`hive-intents`' entry for (initiator, intent_id), or None."""
    rows = [r for r in intents.listing(side.ctx)["intents"]
            if r["initiator"] == initiator.node_id and r["intent_id"] == intent_id]
    return rows[0] if rows else None
