"""Anti-entropy's own bookkeeping, on real SQLite and real signatures; time moves only by
the ManualClock."""
import pytest
from structlog.testing import capture_logs

from handlers import gossip
from handlers.wire import MsgType, encode
from hive_sides import Side, form_hive
from hivemap_fleet import admit


def test_answered_hashes_are_remembered_in_a_bounded_lru(fleet_of_keys, monkeypatch):
    """The table of hashes answered per peer is bounded, and past the bound it forgets the
    oldest answers only (it used to be emptied whole past 1000 peers, forgetting the
    answer just given too). The bound is lowered here: reaching 1000 members through the
    handlers takes too long for a unit test."""
    a, keys = fleet_of_keys
    monkeypatch.setattr(gossip, "MAX_REMEMBERED", 3, raising=False)
    msg = encode(MsgType.STATE_HASH, {"hash": "00" * 32, "count": 0})
    for k in keys:
        a.receive(k.node_id, msg)
    assert len(a.ctx.timers["answered"]) <= 3
    with capture_logs() as logs:
        for k in reversed(keys):          # the same hashes again, within the interval
            a.receive(k.node_id, msg)
    answered = {e["peer_id"] for e in logs if e["event"] == "sync.diverged"}
    refused = {e["peer_id"] for e in logs if e.get("reason") == "already answered these hashes"}
    assert refused == {k.node_id for k in keys[-3:]}     # the 3 most recent are remembered
    assert answered == {k.node_id for k in keys[:-3]}


@pytest.fixture
def fleet_of_keys(tmp_path, clock):
    a, b = Side("a", tmp_path, clock), Side("b", tmp_path, clock)
    form_hive(a, b)
    keys = admit(a, (a,), 6)
    gossip.on_tick(a.ctx)                 # a holds a state, so an empty view differs
    yield a, keys
    a.close()
    b.close()
