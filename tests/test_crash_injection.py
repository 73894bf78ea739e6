"""SIGKILL at random kill points of the initiators' plugins (tests/crash/): channel-open
intents by two initiators in turn, then handshakes, go on through the crashes and
restarts, and afterwards nothing was lost or left unfinished, nothing executed twice,
every machine is in a declared state and SQLite's integrity check passes. A bounded run; `make crash` runs more and prints the figures."""
import pytest

from tests.crash import harness


@pytest.mark.standin_only   # fault injection: the plugin kills itself at chosen points
def test_sigkill_at_random_points_loses_and_repeats_nothing(fleet, tmp_path):
    f = harness.run(fleet, intents=8, handshakes=2, rate=0.03, crash_log=str(tmp_path / "kills"),
                    per_initiator=4)
    assert f["initiators"] == 2
    assert f["kills"] >= 1 and f["restarts"] >= f["kills"]
    assert f["lost"] == [] and f["executed_twice"] == [] and f["illegal"] == []
    assert f["integrity"] == ["ok"] and f["members_missing"] == [] and f["joined"] == 2
    assert f["intents"] == 8 and f["unfinished"] == []
