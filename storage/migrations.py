"""Numbered schema migrations; `PRAGMA user_version` holds the number applied last.

Append a new entry to change the schema; never edit one that has shipped. Each runs in
one transaction together with the version bump, so a crash mid-migration leaves the
previous version intact.
"""

# Columns every machine table carries; `storage.machine_rows` reads and writes them.
MACHINE_COLUMNS = """
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    deadline REAL,
    deadline_trigger TEXT,
    created_at REAL NOT NULL,
    state_since REAL NOT NULL,
    version INTEGER NOT NULL DEFAULT 0,
    data TEXT NOT NULL DEFAULT '{}'
"""

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (1, "the seed's tables", [
        f"""CREATE TABLE hive_members (
            peer_id TEXT PRIMARY KEY,
            {MACHINE_COLUMNS})""",
        f"""CREATE TABLE intent_locks (
            intent_id TEXT PRIMARY KEY,
            intent_type TEXT NOT NULL,
            target TEXT NOT NULL,
            initiator TEXT NOT NULL,
            {MACHINE_COLUMNS})""",
        "CREATE INDEX intent_locks_target ON intent_locks (intent_type, target, state)",
        "CREATE INDEX intent_locks_deadline ON intent_locks (deadline) WHERE deadline IS NOT NULL",
        """CREATE TABLE hive_state (
            peer_id TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            timestamp REAL NOT NULL,
            state_json TEXT NOT NULL,
            signature TEXT NOT NULL,
            updated_at REAL NOT NULL)""",
        """CREATE TABLE contribution_ledger (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            peer_id TEXT NOT NULL,
            direction TEXT NOT NULL CHECK (direction IN ('forwarded', 'received')),
            amount_msat INTEGER NOT NULL CHECK (amount_msat >= 0),
            channel TEXT,
            at REAL NOT NULL)""",
        "CREATE INDEX contribution_ledger_peer ON contribution_ledger (peer_id, at)",
        """CREATE TABLE hive_bans (
            peer_id TEXT PRIMARY KEY,
            reason TEXT NOT NULL,
            banned_at REAL NOT NULL,
            expires_at REAL,
            proof TEXT NOT NULL DEFAULT '{}')""",
    ]),
    (2, "machines of the FSM framework, the transition log and the outbox", [
        f"""CREATE TABLE pending_actions (
            action_id TEXT PRIMARY KEY,
            action_type TEXT NOT NULL,
            target TEXT NOT NULL,
            payload TEXT NOT NULL DEFAULT '{{}}',
            {MACHINE_COLUMNS})""",
        f"""CREATE TABLE handshake_sessions (
            session_id TEXT PRIMARY KEY,
            peer_id TEXT NOT NULL,
            {MACHINE_COLUMNS})""",
        "CREATE INDEX handshake_sessions_peer ON handshake_sessions (peer_id, state)",
        f"""CREATE TABLE circuit_breakers (
            name TEXT PRIMARY KEY,
            {MACHINE_COLUMNS})""",
        "CREATE INDEX hive_members_deadline ON hive_members (deadline) WHERE deadline IS NOT NULL",
        "CREATE INDEX pending_actions_deadline ON pending_actions (deadline) WHERE deadline IS NOT NULL",
        "CREATE INDEX handshake_sessions_deadline ON handshake_sessions (deadline) WHERE deadline IS NOT NULL",
        "CREATE INDEX circuit_breakers_deadline ON circuit_breakers (deadline) WHERE deadline IS NOT NULL",
        """CREATE TABLE transition_log (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            at REAL NOT NULL,
            kind TEXT NOT NULL,
            instance_id TEXT NOT NULL,
            trigger TEXT NOT NULL,
            source TEXT,
            dest TEXT NOT NULL,
            peer_id TEXT,
            context TEXT NOT NULL DEFAULT '{}')""",
        "CREATE INDEX transition_log_instance ON transition_log (kind, instance_id, seq)",
        # The log is evidence: SQLite itself refuses to rewrite it.
        """CREATE TRIGGER transition_log_no_update BEFORE UPDATE ON transition_log
           BEGIN SELECT RAISE(ABORT, 'transition_log is append-only'); END""",
        """CREATE TRIGGER transition_log_no_delete BEFORE DELETE ON transition_log
           BEGIN SELECT RAISE(ABORT, 'transition_log is append-only'); END""",
        """CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            created_at REAL NOT NULL,
            peer_id TEXT NOT NULL,
            msg_hex TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL,
            sent_at REAL,
            abandoned_at REAL,
            last_error TEXT)""",
        """CREATE INDEX outbox_due ON outbox (next_attempt_at)
           WHERE sent_at IS NULL AND abandoned_at IS NULL""",
    ]),
    (3, "the hive's identity, invite tickets, members' admission proofs", [
        """CREATE TABLE hive_meta (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            hive_id TEXT NOT NULL,
            name TEXT NOT NULL,
            admin_id TEXT NOT NULL,
            genesis TEXT NOT NULL,
            joined_at REAL NOT NULL)""",
        """CREATE TABLE tickets (
            ticket_id TEXT PRIMARY KEY,
            tier TEXT NOT NULL,
            peer_id TEXT,
            issued_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            used_by TEXT,
            used_at REAL)""",
        "ALTER TABLE hive_members ADD COLUMN admission TEXT NOT NULL DEFAULT '{}'",
    ]),
    (4, "handshake sessions know their ticket (one live session per ticket)", [
        "ALTER TABLE handshake_sessions ADD COLUMN ticket_id TEXT",
        "UPDATE handshake_sessions SET ticket_id = json_extract(data, '$.ticket_id')",
        "CREATE INDEX handshake_sessions_ticket ON handshake_sessions (ticket_id, state)",
    ]),
    # The log stays evidence under retention: a row may be deleted only once it is older
    # than a cutoff recorded in `log_retention`, which only ever moves forward and which
    # the pruning step sets in the same transaction as its DELETE. So no code path can
    # remove or rewrite a row younger than the retention the operator chose (UPDATE stays
    # refused outright), and a missing cutoff row protects everything (COALESCE).
    (5, "retention: the transition log may lose rows older than a recorded cutoff", [
        """CREATE TABLE log_retention (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            cutoff REAL NOT NULL)""",
        "INSERT INTO log_retention (id, cutoff) VALUES (1, 0)",
        """CREATE TRIGGER log_retention_forward BEFORE UPDATE ON log_retention
           WHEN NEW.cutoff < OLD.cutoff
           BEGIN SELECT RAISE(ABORT, 'the retention cutoff only moves forward'); END""",
        """CREATE TRIGGER log_retention_no_delete BEFORE DELETE ON log_retention
           BEGIN SELECT RAISE(ABORT, 'the retention cutoff only moves forward'); END""",
        "DROP TRIGGER transition_log_no_delete",
        """CREATE TRIGGER transition_log_no_delete BEFORE DELETE ON transition_log
           WHEN OLD.at >= COALESCE((SELECT cutoff FROM log_retention WHERE id = 1), 1e308)
           BEGIN SELECT RAISE(ABORT, 'transition_log is append-only'); END""",
        "CREATE INDEX transition_log_at ON transition_log (at)",
        "CREATE INDEX tickets_expires ON tickets (expires_at)",
    ]),
    (6, "intent locks keyed by (initiator, intent id), with their own lock window", [
        # An intent id is chosen by its initiator, so it names an intent only together with
        # the initiator: the row key is "<initiator>:<intent_id>".
        f"""CREATE TABLE intent_locks_v5 (
            lock_id TEXT PRIMARY KEY,
            intent_id TEXT NOT NULL,
            intent_type TEXT NOT NULL,
            target TEXT NOT NULL,
            initiator TEXT NOT NULL,
            announced_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            {MACHINE_COLUMNS},
            UNIQUE (initiator, intent_id))""",
        # Rows from before carry no window of their own: the longest expiry the options
        # allow keeps them holding their target rather than freeing it early.
        """INSERT INTO intent_locks_v5 (lock_id, intent_id, intent_type, target, initiator,
                announced_at, expires_at, kind, state, deadline, deadline_trigger, created_at,
                state_since, version, data)
           SELECT initiator || ':' || intent_id, intent_id, intent_type, target, initiator,
                created_at, created_at + 86400, kind, state, deadline, deadline_trigger,
                created_at, state_since, version, data FROM intent_locks""",
        # A ban intent's governance action is named after its intent.
        """UPDATE pending_actions SET action_id = (
                SELECT l.lock_id FROM intent_locks_v5 l WHERE l.intent_id = action_id
                AND json_extract(l.data, '$.role') = 'local')
           WHERE action_type = 'ban_peer' AND EXISTS (
                SELECT 1 FROM intent_locks_v5 l WHERE l.intent_id = action_id
                AND json_extract(l.data, '$.role') = 'local')""",
        "DROP TABLE intent_locks",
        "ALTER TABLE intent_locks_v5 RENAME TO intent_locks",
        "CREATE INDEX intent_locks_target ON intent_locks (intent_type, target, state)",
        "CREATE INDEX intent_locks_deadline ON intent_locks (deadline) WHERE deadline IS NOT NULL",
        "CREATE INDEX intent_locks_initiator ON intent_locks (initiator, announced_at)",
    ]),
    (7, "the bridge: members' fleet fee policy, CLBoss tags cl-hive added", [
        # One row per member whose fees the bridge manages. `wanted` is what we are after
        # (fleet: zero fees; released: passive, or the replaced fees back); `settled` says
        # whether the companion confirmed it. `replaced` keeps the fees setchannel overwrote,
        # per short channel id, so a release can restore them.
        """CREATE TABLE bridge_fee_policies (
            peer_id TEXT PRIMARY KEY,
            wanted TEXT NOT NULL CHECK (wanted IN ('fleet', 'released')),
            settled INTEGER NOT NULL DEFAULT 0,
            applied_via TEXT,
            replaced TEXT NOT NULL DEFAULT '{}',
            last_error TEXT,
            updated_at REAL NOT NULL)""",
        # Only the tags cl-hive itself added: a release removes these and nothing else.
        """CREATE TABLE bridge_clboss_tags (
            peer_id TEXT NOT NULL,
            tag TEXT NOT NULL,
            added_at REAL NOT NULL,
            PRIMARY KEY (peer_id, tag))""",
    ]),
    (8, "the contribution ledger: members' forwarded and received msat per day, throttles", [
        # One row per member and day (days since the epoch, UTC): msat that came in from
        # the member and went on (forwarded), msat that went out to it (received). Rows
        # older than the window are deleted, so the size follows members x days, not traffic.
        """CREATE TABLE contribution_days (
            peer_id TEXT NOT NULL,
            day INTEGER NOT NULL,
            forwarded_msat INTEGER NOT NULL DEFAULT 0,
            received_msat INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (peer_id, day)) WITHOUT ROWID""",
        "CREATE INDEX contribution_days_day ON contribution_days (day)",
        # Each member's `contribution_throttle` machine: the signal the bridge reads.
        f"""CREATE TABLE contribution_throttles (
            peer_id TEXT PRIMARY KEY,
            {MACHINE_COLUMNS})""",
    ]),
    (9, "governance: pending actions carry their amount, origin, and who decided them", [
        # `mode` is the governance mode that decided the action (recorded at submit, never
        # rewritten); `approved_by` (autonomous|operator|oracle) and `approved_at` are set
        # when it is approved: autonomous mode's 24-hour limits are a query over them.
        "ALTER TABLE pending_actions ADD COLUMN amount_sat INTEGER",
        "ALTER TABLE pending_actions ADD COLUMN origin TEXT NOT NULL DEFAULT 'rule'",
        "ALTER TABLE pending_actions ADD COLUMN mode TEXT",
        "ALTER TABLE pending_actions ADD COLUMN approved_by TEXT",
        "ALTER TABLE pending_actions ADD COLUMN approved_at REAL",
        """CREATE INDEX pending_actions_approved ON pending_actions (approved_by, approved_at)
           WHERE approved_by IS NOT NULL""",
        "CREATE INDEX pending_actions_state ON pending_actions (state, created_at)",
        # Actions from before carry their kind only in action_type (a ban_peer intent's).
        """UPDATE pending_actions SET data = json_set(data, '$.kind', action_type)
           WHERE json_extract(data, '$.kind') IS NULL""",
    ]),
    (10, "membership governance: proposals, their votes, members' leave records", [
        # A promotion, ban or unban proposal as its proposer signed it (`record`); it is
        # decided once its votes reached the quorum, which `decided_at` records with the
        # counts the decision was made on.
        """CREATE TABLE proposals (
            proposal_id TEXT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('promote', 'ban', 'unban')),
            target TEXT NOT NULL,
            proposer TEXT NOT NULL,
            subject TEXT NOT NULL,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            record TEXT NOT NULL,
            decided_at REAL,
            votes INTEGER,
            eligible INTEGER)""",
        "CREATE INDEX proposals_target ON proposals (target, kind)",
        # One vote per voter and proposal: the newest the voter signed.
        """CREATE TABLE proposal_votes (
            proposal_id TEXT NOT NULL REFERENCES proposals (proposal_id),
            voter TEXT NOT NULL,
            choice TEXT NOT NULL CHECK (choice IN ('yes', 'no')),
            voted_at REAL NOT NULL,
            record TEXT NOT NULL,
            PRIMARY KEY (proposal_id, voter))""",
        # A member's signed LEAVE, bound to the admission it ends.
        """CREATE TABLE member_leaves (
            peer_id TEXT NOT NULL,
            subject TEXT NOT NULL,
            left_at REAL NOT NULL,
            record TEXT NOT NULL,
            PRIMARY KEY (peer_id, subject))""",
    ]),
    (11, "majority-acknowledged intent locks: each member's one promise per target", [
        # The intent this member acknowledged on a (type, target), until its lock window
        # (plus clock skew) ends or its initiator aborts it: one row, so at most one.
        """CREATE TABLE intent_acks (
            intent_type TEXT NOT NULL,
            target TEXT NOT NULL,
            lock_id TEXT NOT NULL,
            acked_at REAL NOT NULL,
            until REAL NOT NULL,
            PRIMARY KEY (intent_type, target)) WITHOUT ROWID""",
    ]),
    (12, "the planner: its last plan, and the targets it holds saturated", [
        # One row: the last cycle's plan (inputs, outputs, reasons). Its computed_at is
        # also the planner's timer: the next cycle is due one interval after it.
        """CREATE TABLE planner_plan (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            computed_at REAL NOT NULL,
            plan TEXT NOT NULL)""",
        # Targets held saturated (hysteresis needs the previous verdict), whether our
        # CLBoss carries the `open` tag for it, and those released whose tag is still
        # to be removed.
        """CREATE TABLE planner_saturation (
            target TEXT PRIMARY KEY,
            share_pct REAL NOT NULL,
            since REAL NOT NULL,
            tagged INTEGER NOT NULL DEFAULT 0,
            released INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID""",
    ]),
    (13, "the HiveMap's digests read from an index alone", [
        # The fleet hash and the DIGEST read (peer_id, version, timestamp) of every state,
        # again after each change: at 1,000 members, from the index alone, without a
        # look-up of each row (and its state) in the table.
        "CREATE INDEX hive_state_digest ON hive_state (peer_id, version, timestamp)",
    ]),
    (14, "the HiveMap keeps the version each state replaced", [
        # A STATE_HASH covers, per member, the newest state made by a time some seconds
        # back (docs/PROTOCOL.md §5): the state held if old enough, else the one it
        # replaced, so a heartbeat still on its way does not make two views differ.
        "ALTER TABLE hive_state ADD COLUMN prev_version INTEGER",
        "ALTER TABLE hive_state ADD COLUMN prev_timestamp REAL",
        "DROP INDEX hive_state_digest",
        "CREATE INDEX hive_state_digest ON hive_state "
        "(peer_id, version, timestamp, prev_version, prev_timestamp)",
    ]),
]

LATEST = MIGRATIONS[-1][0]
