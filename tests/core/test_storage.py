"""Storage on real SQLite files: migrations, transactions, the append-only log."""
import sqlite3
import threading

import pytest

from storage import hivemap, machine_rows, outbox, transition_log
from storage.db import Database, DatabaseDamaged, SchemaTooNew
from tests.core.db_damage import filled_database, scribble_header, scribble_mid_file
from storage.migrations import LATEST, MIGRATIONS

SEED_TABLES = {"hive_members", "intent_locks", "hive_state", "contribution_ledger", "hive_bans"}
FRAMEWORK_TABLES = {"pending_actions", "handshake_sessions", "circuit_breakers",
                    "transition_log", "outbox"}
HIVE_TABLES = {"hive_meta", "tickets"}
RETENTION_TABLES = {"log_retention"}
BRIDGE_TABLES = {"bridge_fee_policies", "bridge_clboss_tags"}
CONTRIBUTION_TABLES = {"contribution_days", "contribution_throttles"}
COUNCIL_TABLES = {"proposals", "proposal_votes", "member_leaves"}
INTENT_ACK_TABLES = {"intent_acks"}
PLANNER_TABLES = {"planner_plan", "planner_saturation"}


def tables(db):
    return {r[0] for r in db.conn().execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")}


def machine_fields(state="pending", data=None):
    return {"state": state, "deadline": None, "deadline_trigger": None, "created_at": 1.0,
            "state_since": 1.0, "version": 0, "data": data or {}}


def test_migrates_an_empty_file_to_the_latest_schema(tmp_path):
    db = Database(str(tmp_path / "h.db"))
    assert db.migrate() == 0
    assert db.schema_version() == LATEST
    assert tables(db) == SEED_TABLES | FRAMEWORK_TABLES | HIVE_TABLES | RETENTION_TABLES | \
        BRIDGE_TABLES | CONTRIBUTION_TABLES | COUNCIL_TABLES | INTENT_ACK_TABLES | PLANNER_TABLES
    assert db.conn().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_every_connection_syncs_each_commit_to_disk(db):
    """At-most-once execution rests on the `executing` commit surviving a power loss: in
    WAL mode that needs synchronous=FULL (2), on every thread's connection."""
    seen = []
    t = threading.Thread(target=lambda: seen.append(
        db.conn().execute("PRAGMA synchronous").fetchone()[0]))
    t.start()
    t.join()
    assert seen == [2]
    assert db.conn().execute("PRAGMA synchronous").fetchone()[0] == 2


@pytest.mark.parametrize("start", [n for n, _, _ in MIGRATIONS[:-1]])
def test_migrates_from_each_earlier_version_keeping_data(tmp_path, start):
    path = str(tmp_path / "h.db")
    db = Database(path)
    db.migrate(target=start)
    assert db.schema_version() == start
    with db.transaction() as conn:
        machine_rows.insert(conn, "member_tier", "02aa", machine_fields("admin"))
    db.close()
    db = Database(path)
    assert db.migrate() == start
    assert db.schema_version() == LATEST
    assert machine_rows.load(db.conn(), "member_tier", "02aa")["state"] == "admin"
    db.close()


def test_migrating_twice_is_a_no_op(db):
    assert db.migrate() == LATEST
    assert db.schema_version() == LATEST


def test_refuses_a_schema_from_a_newer_release(tmp_path):
    path = str(tmp_path / "h.db")
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {LATEST + 1}")
    raw.close()
    db = Database(path)
    with pytest.raises(SchemaTooNew, match=f"schema version {LATEST + 1}"):
        db.migrate()
    db.close()


def test_a_sound_database_passes_the_full_check_and_a_large_one_the_quick_check(tmp_path):
    path = str(tmp_path / "h.db")
    filled_database(path)
    db = Database(path)
    assert db.check() == "integrity_check"
    assert db.check(quick_above_bytes=0) == "quick_check"
    db.close()


@pytest.mark.parametrize("quick_above_bytes,pragma", [(10**12, "integrity_check"),
                                                      (0, "quick_check")])
def test_a_page_overwritten_mid_file_is_found_damaged(tmp_path, quick_above_bytes, pragma):
    path = str(tmp_path / "h.db")
    filled_database(path)
    scribble_mid_file(path)
    db = Database(path)
    with pytest.raises(DatabaseDamaged, match=f"^{pragma} found: .*page"):
        db.check(quick_above_bytes=quick_above_bytes)
    db.close()


def test_a_file_whose_header_is_not_sqlite_is_found_damaged(tmp_path):
    path = str(tmp_path / "h.db")
    filled_database(path)
    scribble_header(path)
    db = Database(path)
    with pytest.raises(DatabaseDamaged, match="file is not a database"):
        db.check()
    db.close()


def test_transaction_rolls_back_every_step_when_one_fails(db):
    with pytest.raises(RuntimeError, match="boom"):
        with db.transaction() as conn:
            machine_rows.insert(conn, "intent_lock", "i1", machine_fields(),
                                {"intent_type": "rebalance", "target": "t", "initiator": "me",
                                 "intent_id": "i1", "announced_at": 1.0, "expires_at": 2.0})
            transition_log.append(conn, at=1.0, kind="intent_lock", instance_id="i1",
                                  trigger="create", source=None, dest="pending", peer_id=None,
                                  context={})
            outbox.add(conn, peer_id="02bb", msg_hex="8001", now=1.0)
            raise RuntimeError("boom")
    conn = db.conn()
    assert machine_rows.load(conn, "intent_lock", "i1") is None
    assert transition_log.recent(conn) == []
    assert outbox.pending_count(conn) == 0


def test_a_failing_sql_statement_rolls_back_the_earlier_ones(db):
    with pytest.raises(sqlite3.IntegrityError):
        with db.transaction() as conn:
            machine_rows.insert(conn, "member_tier", "02aa", machine_fields("neophyte"))
            machine_rows.insert(conn, "member_tier", "02aa", machine_fields("member"))
    assert machine_rows.load(db.conn(), "member_tier", "02aa") is None


def test_transition_log_is_append_only(db):
    with db.transaction() as conn:
        transition_log.append(conn, at=1.0, kind="member_tier", instance_id="02aa",
                              trigger="create", source=None, dest="neophyte", peer_id="02aa",
                              context={"why": "test"})
    for stmt in ("UPDATE transition_log SET dest = 'admin'", "DELETE FROM transition_log"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.conn().execute(stmt)
    assert transition_log.recent(db.conn())[0]["context"] == {"why": "test"}


def test_stale_write_is_refused(db):
    with db.transaction() as conn:
        machine_rows.insert(conn, "member_tier", "02aa", machine_fields("neophyte"))
    with db.transaction() as conn:
        machine_rows.update(conn, "member_tier", "02aa", machine_fields("member"), 0)
    with pytest.raises(machine_rows.StaleWrite):
        with db.transaction() as conn:
            machine_rows.update(conn, "member_tier", "02aa", machine_fields("banned"), 0)
    assert machine_rows.load(db.conn(), "member_tier", "02aa")["state"] == "member"


def test_counts_and_due_span_every_machine_table(db):
    with db.transaction() as conn:
        f = machine_fields("challenge_sent")
        f["deadline"], f["deadline_trigger"] = 5.0, "expire"
        machine_rows.insert(conn, "handshake_admin", "s1", f, {"peer_id": "02aa"})
        machine_rows.insert(conn, "member_tier", "02aa", machine_fields("admin"))
        machine_rows.insert(conn, "member_tier", "02bb", machine_fields("admin"))
    assert machine_rows.counts(db.conn()) == {"handshake_admin": {"challenge_sent": 1},
                                              "member_tier": {"admin": 2}}
    assert machine_rows.due(db.conn(), now=4.9) == []
    assert machine_rows.due(db.conn(), now=5.0) == [("handshake_admin", "s1", "expire")]


def test_each_thread_gets_its_own_connection(db):
    seen = []
    t = threading.Thread(target=lambda: seen.append(db.conn()))
    t.start()
    t.join()
    assert seen[0] is not db.conn()
    # and a write on one thread is visible on the other once committed
    with db.transaction() as conn:
        machine_rows.insert(conn, "member_tier", "02aa", machine_fields("admin"))
    out = []
    t = threading.Thread(target=lambda: out.append(
        machine_rows.load(db.conn(), "member_tier", "02aa")["state"]))
    t.start()
    t.join()
    assert out == ["admin"]


def test_outbox_retries_then_abandons(db):
    with db.transaction() as conn:
        seq = outbox.add(conn, peer_id="02aa", msg_hex="8001", now=10.0)
    with db.transaction() as conn:
        outbox.mark_failed(conn, seq, "Peer is not connected", 10.0, retry_at=20.0)
    assert outbox.due(db.conn(), 19.0) == []
    assert [r["seq"] for r in outbox.due(db.conn(), 20.0)] == [seq]
    with db.transaction() as conn:
        outbox.mark_failed(conn, seq, "Peer is not connected", 20.0, retry_at=None)
    assert outbox.due(db.conn(), 1e12) == [] and outbox.pending_count(db.conn()) == 0
    with db.transaction() as conn:
        assert outbox.prune_sent(conn, before=11.0) == 1


def test_closed_database_refuses_use(tmp_path):
    db = Database(str(tmp_path / "h.db"))
    db.migrate()
    db.close()
    with pytest.raises(sqlite3.ProgrammingError):
        db.conn()


def test_nested_transactions_commit_with_the_outer_one_and_roll_back_alone(db):
    ran = []
    with db.transaction() as conn:
        machine_rows.insert(conn, "member_tier", "02aa", machine_fields("admin"))
        db.after_commit(lambda: ran.append("outer"))
        with pytest.raises(RuntimeError):
            with db.transaction() as inner:
                machine_rows.insert(inner, "member_tier", "02bb", machine_fields("member"))
                raise RuntimeError("inner step fails")
        with db.transaction() as inner:
            machine_rows.insert(inner, "member_tier", "02cc", machine_fields("member"))
            db.after_commit(lambda: ran.append("inner"))
        assert ran == []                     # nothing runs before the outer commit
    assert ran == ["outer", "inner"]
    assert machine_rows.counts(db.conn()) == {"member_tier": {"admin": 1, "member": 1}}


def test_after_commit_callbacks_are_dropped_on_rollback(db):
    ran = []
    with pytest.raises(RuntimeError):
        with db.transaction():
            with db.transaction():
                db.after_commit(lambda: ran.append("never"))
            raise RuntimeError("outer fails")
    assert ran == []
    with db.transaction():
        db.after_commit(lambda: ran.append("next"))
    assert ran == ["next"]


def test_after_commit_callbacks_of_a_rolled_back_savepoint_never_run(db):
    """A step that failed inside a savepoint must not log or notify at the outer commit."""
    ran = []
    with db.transaction() as conn:
        db.after_commit(lambda: ran.append("outer"))
        with pytest.raises(RuntimeError):
            with db.transaction():
                db.after_commit(lambda: ran.append("rolled back"))
                with db.transaction():
                    db.after_commit(lambda: ran.append("inside the rolled back one"))
                raise RuntimeError("inner step fails")
        with db.transaction():
            db.after_commit(lambda: ran.append("kept"))
        machine_rows.insert(conn, "member_tier", "02aa", machine_fields("admin"))
    assert ran == ["outer", "kept"]


def test_a_commit_that_fails_rolls_back_and_the_next_transaction_works(db):
    """A deferred constraint fails at COMMIT itself: the transaction must not stay open
    (every later BEGIN on this thread would fail) and its callbacks must not run."""
    conn = db.conn()
    conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    conn.execute("CREATE TABLE child (pid INTEGER REFERENCES parent (id) "
                 "DEFERRABLE INITIALLY DEFERRED)")
    ran = []
    with pytest.raises(sqlite3.IntegrityError):
        with db.transaction() as c:
            c.execute("INSERT INTO child (pid) VALUES (42)")
            db.after_commit(lambda: ran.append("never"))
    assert not conn.in_transaction and ran == []
    assert conn.execute("SELECT COUNT(*) FROM child").fetchone()[0] == 0
    with db.transaction() as c:
        machine_rows.insert(c, "member_tier", "02aa", machine_fields("admin"))
        db.after_commit(lambda: ran.append("next"))
    assert ran == ["next"]


def test_migration_6_keys_intent_locks_by_initiator_and_id(tmp_path):
    """Rows written before (keyed by intent id alone) keep their state under
    "<initiator>:<intent_id>"; a ban intent's governance action follows its intent."""
    path = str(tmp_path / "h.db")
    db = Database(path)
    db.migrate(target=3)
    me, iid = "02" + "aa" * 32, "ab" * 16
    with db.transaction() as conn:      # the schema of version 3, written as it was then
        conn.execute(
            """INSERT INTO intent_locks (intent_id, intent_type, target, initiator, kind, state,
                   created_at, state_since, data) VALUES (?, 'ban_peer', 't', ?,
                   'intent_lock', 'executed', 5.0, 6.0, '{"role": "local"}')""", (iid, me))
        machine_rows.insert(conn, "pending_action", iid, machine_fields("awaiting_approval"),
                            {"action_type": "ban_peer", "target": "t"})
    db.migrate()
    conn = db.conn()
    assert machine_rows.load(conn, "intent_lock", f"{me}:{iid}")["state"] == "executed"
    assert machine_rows.load(conn, "intent_lock", iid) is None
    assert machine_rows.load(conn, "pending_action", f"{me}:{iid}")["state"] == \
        "awaiting_approval"
    row = conn.execute("SELECT intent_id, announced_at, expires_at FROM intent_locks").fetchone()
    assert tuple(row) == (iid, 5.0, 5.0 + 86400)
    db.close()


def test_migration_14_keeps_held_states_and_each_later_one_remembers_the_one_it_replaced(
        tmp_path):
    """States held before the migration have no previous one; a newer state stored after it
    keeps the replaced one's (timestamp, version), which a STATE_HASH covers while the newer
    is still settling (storage.hivemap.settled_rows)."""
    db = Database(str(tmp_path / "h.db"))
    db.migrate(target=13)
    peer, other = "02" + "aa" * 32, "03" + "bb" * 32
    with db.transaction() as conn:       # the schema of version 13
        for pid, ts in ((peer, 100), (other, 300)):
            conn.execute("INSERT INTO hive_state (peer_id, version, timestamp, state_json, "
                         "signature, updated_at) VALUES (?, 1, ?, '{}', 's', ?)", (pid, ts, ts))
    db.migrate()
    conn = db.conn()
    assert hivemap.settled_rows(conn, 200) == [(peer, 100, 1)]
    with db.transaction() as c:
        assert hivemap.put_if_newer(c, {"peer_id": peer, "version": 2, "timestamp": 250},
                                    "t", 250)
        # not newer: the previous one stays the one replaced
        assert not hivemap.put_if_newer(c, {"peer_id": peer, "version": 1, "timestamp": 240},
                                        "u", 260)
    assert hivemap.settled_rows(conn, 249) == [(peer, 100, 1)]      # the newer is settling
    assert hivemap.settled_rows(conn, 250) == [(peer, 250, 2)]
    assert hivemap.settled_rows(conn, 300) == [(peer, 250, 2), (other, 300, 1)]
    assert hivemap.settled_rows(conn, 99) == []
    assert hivemap.digest_rows(conn) == [(peer, 250, 2), (other, 300, 1)]
    db.close()
