"""Refusals of peer input are logged at info, and a peer repeating one is rate-limited:
a burst, then one line per interval carrying how many were held back."""
import structlog
from structlog.testing import capture_logs

from handlers.frame import refusals
from handlers.frame.clock import ManualClock

PEER, OTHER = "02" + "11" * 32, "03" + "22" * 32
log = structlog.get_logger("test")


def test_a_peer_repeating_a_refusal_is_logged_a_burst_then_once_per_interval():
    clock = ManualClock()
    refusals.reset(clock)
    with capture_logs() as logs:
        for _ in range(refusals.BURST + 20):
            refusals.refusal_log(log, "gossip.refused", PEER, reason="not a member")
        refusals.refusal_log(log, "gossip.refused", OTHER, reason="not a member")
        refusals.refusal_log(log, "intent.refused", PEER, reason="bad")
        clock.advance(1 / refusals.RATE)
        refusals.refusal_log(log, "gossip.refused", PEER, reason="not a member")
    lines = [(e["event"], e["peer_id"], e.get("suppressed")) for e in logs]
    assert lines == [("gossip.refused", PEER, None)] * refusals.BURST + [
        ("gossip.refused", OTHER, None), ("intent.refused", PEER, None),
        ("gossip.refused", PEER, 20)]
    assert {e["log_level"] for e in logs} == {"info"}
    assert logs[0]["reason"] == "not a member"
