#!/usr/bin/env python3
"""plugin.py with kill points: the real plugin, except that at each kill point it may
SIGKILL itself (no cleanup, no flush: what a power cut or the OOM killer does).

Kill points: `before_commit` (a transaction's work done, COMMIT not yet run),
`after_commit`, `executing` (an intent's `executing` state committed, its executor not yet
run), `before_send` and `after_send` (a message handed to lightningd, not yet marked sent).
Each time, with probability HIVE_CRASH_RATE (weighted up for `executing`), the point's name is appended (and synced) to
HIVE_CRASH_LOG and the process kills itself. Test-only: the stand-in runs this file in
place of plugin.py; nothing here is part of cl-hive."""
import os
import random
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import plugin  # noqa: E402
from handlers.frame.effects import ThreadLocalRpc  # noqa: E402
from handlers.intents.executors import EXECUTORS  # noqa: E402
from storage.db import Database  # noqa: E402

RATE = float(os.environ.get("HIVE_CRASH_RATE", "0"))
LOG = os.environ.get("HIVE_CRASH_LOG")
_rng = random.Random(os.urandom(8))


# An execution is rare beside the commits of every tick: its kill point is weighted up so
# that a run covers it.
WEIGHT = {"executing": 50}


def maybe_kill(point: str) -> None:
    if LOG is None or _rng.random() >= RATE * WEIGHT.get(point, 1):
        return
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, (point + "\n").encode())
    os.fsync(fd)
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


_transaction = Database.transaction


@contextmanager
def transaction(self):
    outer = getattr(self._local, "depth", 0) == 0
    with _transaction(self) as conn:
        yield conn
        if outer:
            maybe_kill("before_commit")
    if outer:
        maybe_kill("after_commit")


Database.transaction = transaction

_call = ThreadLocalRpc.call


def call(self, method, params=None):
    if method != "sendcustommsg":
        return _call(self, method, params)
    maybe_kill("before_send")
    out = _call(self, method, params)
    maybe_kill("after_send")
    return out


ThreadLocalRpc.call = call

for executor in EXECUTORS.values():
    def execute(ctx, intent, _run=executor.execute):
        maybe_kill("executing")
        return _run(ctx, intent)
    executor.execute = execute

if __name__ == "__main__":
    plugin.main()
