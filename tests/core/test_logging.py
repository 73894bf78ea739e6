"""Logs reach lightningd's log as one JSON line per event, at lightningd's levels, and
never stdout; `hive-log-file` gets the same events as JSON lines."""
import json
import logging
import subprocess
import sys
from pathlib import Path

import structlog

from handlers.frame import logs
from handlers.frame.dispatch import Dispatcher

ROOT = Path(__file__).resolve().parents[2]


def test_transitions_reach_the_sink_and_the_file_as_json(tmp_path, db, clock, config):
    lines = []
    log_file = tmp_path / "hive.jsonl"
    logs.configure(lambda message, level: lines.append((level, message)), log_file=str(log_file))
    try:
        d = Dispatcher(db, clock, lambda: config)
        d.create("circuit_breaker", "b1")
        d.fire("circuit_breaker", "b1", "failure", failures=9, threshold=3, peer_id=None)
        d.fire("circuit_breaker", "b1", "cooldown_elapsed")   # refused: too early
        structlog.get_logger("t").error("really.broken")
    finally:
        for h in logging.getLogger().handlers:
            h.flush()
    events = [(level, json.loads(m)) for level, m in lines]
    assert [(lvl, e["event"]) for lvl, e in events] == [
        ("info", "fsm.transition"), ("info", "fsm.transition"),
        ("info", "fsm.trigger_refused"), ("error", "really.broken")]
    moved = events[1][1]
    assert (moved["machine"], moved["instance_id"], moved["trigger"], moved["source"],
            moved["dest"]) == ("circuit_breaker", "b1", "failure", "closed", "open")
    assert all("\n" not in m for _, m in lines)     # one lightningd log line per event
    in_file = [json.loads(x) for x in log_file.read_text().splitlines()]
    assert [e["event"] for e in in_file] == [e["event"] for _, e in events]
    assert all("timestamp" in e for e in in_file)


def test_warning_maps_to_warn_and_foreign_stdlib_records_are_rendered():
    lines = []
    logs.configure(lambda message, level: lines.append((level, message)))
    logging.getLogger("someone.else").warning("careful %s", "now")
    structlog.get_logger("hive").warning("hive.careful", n=1)
    assert [lvl for lvl, _ in lines] == ["warn", "warn"]
    assert json.loads(lines[0][1])["event"] == "careful now"


def test_configured_logging_writes_nothing_to_stdout():
    code = ("import structlog, logging; from handlers.frame import logs; "
            "logs.configure(lambda m, l: None); "
            "structlog.get_logger('x').info('hello', a=1); logging.getLogger('y').error('e')")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
