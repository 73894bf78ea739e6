"""hive-backup: a consistent copy through SQLite's online backup API while the hive keeps
writing, never over an existing file, refusals naming `destination`."""
import os
import threading

import pytest
from pyln.client import RpcException

from handlers import backup
from handlers.frame import config as cfg
from handlers.frame import errors
from handlers.hive import Hive
from storage import machine_rows
from storage.db import Database
from storage.migrations import LATEST


def test_a_backup_while_writes_go_on_is_a_consistent_database(tmp_path, clock):
    hive = Hive(clock=clock)
    hive.start(cfg.from_init({}, str(tmp_path)), None)
    stop = threading.Event()

    def write():          # machines created on the worker, as commands and messages do
        n = 0
        while not stop.is_set():
            n += 1
            hive.command(lambda n=n: hive.ctx.dispatcher.create(
                "circuit_breaker", f"c{n}", state="closed")).result(timeout=5)
    writer = threading.Thread(target=write)
    writer.start()
    try:
        outs = [hive.backup(f"b{i}.db").result(timeout=10) for i in range(3)]
    finally:
        stop.set()
        writer.join(5)
        hive.stop()
    for out in outs:
        assert out["check"] == "ok" and out["schema_version"] == LATEST
        assert out["destination"] == str(tmp_path / os.path.basename(out["destination"]))
        copy = Database(out["destination"])
        assert copy.check() in ("integrity_check", "quick_check")
        copy.close()
    # The copies were taken while rows were being added: each one holds whole rows only.
    counts = []
    for out in outs:
        copy = Database(out["destination"])
        counts.append(sum(machine_rows.counts(copy.conn()).get("circuit_breaker", {}).values()))
        copy.close()
    assert counts == sorted(counts) and counts[-1] > 0


def test_a_backup_never_overwrites_and_names_destination(tmp_path):
    db = Database(str(tmp_path / "cl-hive.db"))
    db.migrate()
    existing = tmp_path / "mine.txt"
    existing.write_text("keep me")
    for destination, problem in ((str(existing), "exists; a backup never overwrites"),
                                 ("cl-hive.db", "exists; a backup never overwrites"),
                                 ("missing/b.db", "does not exist"),
                                 ("", "expected a file path"), (7, "expected a file path")):
        with pytest.raises(RpcException) as e:
            backup.backup(db, destination)
        assert e.value.code == errors.INVALID_PARAMS
        assert e.value.message.startswith("destination: ") and problem in e.value.message
    assert existing.read_text() == "keep me"
    db.close()
