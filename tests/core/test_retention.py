"""Retention: the transition log, finished handshake sessions, expired tickets and finished
pending actions are pruned after `hive-log-retention-days`, from the tick, at most once an
hour; the log stays append-only for everything younger than the recorded cutoff."""
import sqlite3

import pytest
from structlog.testing import capture_logs

from handlers.frame import config as cfg
from handlers.frame import retention
from machines import SPECS
from storage import hive as hive_store
from storage import machine_rows, transition_log
from storage import retention as retention_store
from tests.core.hive_sides import Side

DAY = 86400.0
PEER = "02" + "11" * 32


@pytest.fixture
def side(tmp_path, clock):
    s = Side("a", tmp_path, clock)
    yield s
    s.close()


def log_row(conn, at, instance_id="s1"):
    transition_log.append(conn, at=at, kind="handshake_admin", instance_id=instance_id,
                          trigger="create", source=None, dest="challenge_sent",
                          peer_id=PEER, context={})


def session(conn, session_id, state, since):
    machine_rows.insert(conn, "handshake_admin", session_id, {
        "state": state, "deadline": None, "deadline_trigger": None, "created_at": since,
        "state_since": since, "version": 0, "data": {}}, {"peer_id": PEER})


def action(conn, action_id, state, since):
    machine_rows.insert(conn, "pending_action", action_id, {
        "state": state, "deadline": None, "deadline_trigger": None, "created_at": since,
        "state_since": since, "version": 0, "data": {}},
        {"action_type": "ban", "target": PEER})


def test_the_option_is_dynamic_and_defaults_to_90_days(config):
    assert config.log_retention_days == 90
    assert cfg.with_change(config, "hive-log-retention-days", "7").log_retention_days == 7
    with pytest.raises(cfg.ConfigError, match="hive-log-retention-days"):
        cfg.with_change(config, "hive-log-retention-days", "0")


def test_the_log_stays_append_only_except_below_the_recorded_cutoff(db, clock):
    now = clock.now()
    with db.transaction() as conn:
        log_row(conn, now - 100 * DAY, "old")
        log_row(conn, now - 1 * DAY, "young")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):   # no cutoff yet
        db.conn().execute("DELETE FROM transition_log")
    with db.transaction() as conn:
        counts = retention_store.prune(conn, before=now - 90 * DAY, terminal={})
    assert counts["transition_log"] == 1
    assert [r["instance_id"] for r in transition_log.recent(db.conn())] == ["young"]
    # the cutoff lets nobody delete or rewrite what is younger
    for stmt in ("DELETE FROM transition_log", "UPDATE transition_log SET dest = 'x'"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.conn().execute(stmt)
    # and it never moves back
    with pytest.raises(sqlite3.IntegrityError, match="only moves forward"):
        db.conn().execute("UPDATE log_retention SET cutoff = 0")


def test_finished_sessions_used_or_expired_tickets_and_finished_actions_are_pruned(side, clock):
    now = clock.now()
    old, recent = now - 91 * DAY, now - 89 * DAY
    with side.db.transaction() as conn:
        session(conn, "done-old", "welcomed", old)
        session(conn, "done-recent", "expired", recent)
        session(conn, "open-old", "challenge_sent", old)     # not terminal: kept
        action(conn, "rejected-old", "rejected", old)
        action(conn, "waiting-old", "awaiting_approval", old)
        hive_store.add_ticket(conn, ticket_id="t-expired-long-ago", tier="neophyte",
                              peer_id=None, issued_at=old - DAY, expires_at=old)
        hive_store.add_ticket(conn, ticket_id="t-expired-lately", tier="neophyte",
                              peer_id=None, issued_at=recent - DAY, expires_at=recent)
        hive_store.add_ticket(conn, ticket_id="t-used-valid", tier="neophyte",
                              peer_id=None, issued_at=now - DAY, expires_at=now + DAY)
        hive_store.use_ticket(conn, "t-used-valid", PEER, now - DAY)
        log_row(conn, old)
    with capture_logs() as logs:
        retention.on_tick(side.ctx)
    conn = side.db.conn()
    assert machine_rows.counts(conn) == {
        "handshake_admin": {"challenge_sent": 1, "expired": 1},
        "pending_action": {"awaiting_approval": 1}}
    # a used ticket that has not expired must stay, or it could be presented again
    assert hive_store.get_ticket(conn, "t-expired-long-ago") is None
    assert hive_store.get_ticket(conn, "t-expired-lately") is not None
    assert hive_store.get_ticket(conn, "t-used-valid") is not None
    [event] = [e for e in logs if e["event"] == "retention.pruned"]
    assert event["log_level"] == "info" and event["retention_days"] == 90
    assert event["pruned"] == {"transition_log": 1, "handshake_sessions": 1, "tickets": 1,
                               "pending_actions": 1}


def test_pruning_runs_at_most_once_an_hour_and_follows_the_option(side, clock):
    with side.db.transaction() as conn:
        log_row(conn, clock.now() - 10 * DAY)
    with capture_logs() as logs:
        retention.on_tick(side.ctx)               # 90 days: nothing to prune
        side.config = cfg.with_change(side.config, "hive-log-retention-days", "7")
        retention.on_tick(side.ctx)               # within the hour: not run again
        assert transition_log.recent(side.db.conn()) != []
        clock.advance(retention.PRUNE_EVERY_SECONDS)
        retention.on_tick(side.ctx)
    assert transition_log.recent(side.db.conn()) == []
    assert [e["pruned"]["transition_log"] for e in logs
            if e["event"] == "retention.pruned"] == [0, 1]


def test_terminal_states_come_from_the_machine_specs():
    assert retention.terminal_states() == {
        kind: SPECS[kind].terminal for kind in ("handshake_joiner", "handshake_admin",
                                                "pending_action")}
