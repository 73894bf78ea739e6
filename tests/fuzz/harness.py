"""Deliver fuzzed messages to whole nodes (the real router and handlers on real SQLite and
signatures) and judge each delivery: a crash (the handler raised), an error logged, or an
unexpected state change. Expected changes are none: every valid message was delivered
while the corpus was recorded, so what arrives now is malformed, mutated, oversized or a
replay, and none of it may add a member, change the hive, or be refused yet leave a trace."""
from __future__ import annotations

from dataclasses import dataclass, field

from structlog.testing import capture_logs

from handlers.frame import refusals
from machines import SPECS
from storage import hive as hive_store
from storage import hivemap, machine_rows, outbox
from storage import intents as intent_store
from tests.fuzz import mutate
from tests.fuzz.corpus import record_traffic

REFUSALS = {"wire.rejected", "wire.unhandled", "wire.rate_limited", "fsm.trigger_refused"}
STRANGER = "02" + "ee" * 32


@dataclass
class Tally:
    messages: int = 0
    crashes: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)
    by: dict = field(default_factory=dict)       # (type name, category) -> count

    @property
    def clean(self) -> bool:
        return not (self.crashes or self.errors or self.unexpected)


def _identity(conn):
    """What no fuzzed message may ever change."""
    return (hive_store.get_meta(conn), hive_store.members(conn),
            sorted(hive_store.banned_ids(conn)))


def _footprint(conn):
    """Everything a refused message must leave as it was."""
    return (_identity(conn), machine_rows.versions(conn), intent_store.all_acks(conn),
            [(e["state"]["peer_id"], e["state"]["version"]) for e in hivemap.all_entries(conn)],
            outbox.total_count(conn))


def _answered(logs, before, after) -> bool:
    """A refusal the admin answers with JOIN_REFUSED (its log line says `answered`) adds
    that one message to the outbox and changes nothing else."""
    return (any("answered" in e for e in logs) and after[:-1] == before[:-1]
            and after[-1] == before[-1] + 1)


def _illegal_states(conn):
    return [(k, i, s) for k, i, s, _ in machine_rows.versions(conn) if s not in SPECS[k].states]


class Harness:
    def __init__(self, tmp_path, clock):
        refusals.reset(burst=10**9)         # every refusal logged: it is how we tell one
        self.clock = clock
        with capture_logs():                # the recording's own log lines are not judged
            self.sides, self.seeds = record_traffic(tmp_path, clock)
        self.by_id = {s.node_id: s for s in self.sides}
        self.tally = Tally()
        self._seen = {}     # node id -> (write stamp, footprint, illegal states) as last read

    @staticmethod
    def _writes(conn) -> tuple[int, int]:
        """Changes since the connection opened, and commits by any other connection: while
        both stay put, nothing was written and the footprint need not be read again."""
        return conn.total_changes, conn.execute("PRAGMA data_version").fetchone()[0]

    def _read(self, side, conn) -> tuple:
        stamp = self._writes(conn)
        seen = self._seen.get(side.node_id)
        if seen is None or seen[0] != stamp:
            seen = (stamp, _footprint(conn), _illegal_states(conn))
            self._seen[side.node_id] = seen
        return seen[1], seen[2]

    def close(self):
        for s in self.sides:
            s.close()
        refusals.reset()

    def fuzz_one(self, src, category: str, seed) -> None:
        msg = mutate.make(src, category, seed.msg_hex, int(seed.kind))
        # mostly the recorded sender; sometimes another member, or a stranger
        sender = src.choice([seed.sender] * 6 + [s.node_id for s in self.sides] + [STRANGER])
        self.deliver(sender, self.by_id[seed.receiver], msg, (seed.kind.name, category))

    def deliver(self, sender: str, side, msg_hex: str, label) -> None:
        t = self.tally
        t.messages += 1
        t.by[label] = t.by.get(label, 0) + 1
        self.clock.advance(0.05)            # rate limiters refill as in real time
        conn = side.db.conn()
        before, _ = self._read(side, conn)
        with capture_logs() as logs:
            try:
                side.receive(sender, msg_hex)
            except Exception as e:          # what the fuzzer is here to find
                t.crashes.append((label, repr(e), msg_hex[:200]))
        errors = [e for e in logs if e.get("log_level") in ("error", "critical", "exception")]
        if errors:
            t.errors.append((label, errors[0]["event"], msg_hex[:200]))
        refused = any(e["event"].endswith(".refused") or e["event"] in REFUSALS for e in logs)
        after, illegal = self._read(side, conn)
        if after[0] != before[0]:
            t.unexpected.append((label, "the hive or its members changed", msg_hex[:200]))
        elif refused and after != before and not _answered(logs, before, after):
            t.unexpected.append((label, "refused, yet state changed", msg_hex[:200]))
        if illegal:
            t.unexpected.append((label, f"undeclared states {illegal[:3]}", msg_hex[:200]))
