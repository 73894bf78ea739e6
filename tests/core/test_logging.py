"""Logs reach lightningd's log as one readable line per event (event name, then
key=value), at lightningd's levels, and never stdout; `hive-log-file` gets the same events
as JSON lines."""
import json
import logging
import subprocess
import sys
from pathlib import Path

import structlog

from handlers.frame import logline, logs
from handlers.frame.dispatch import Dispatcher

ROOT = Path(__file__).resolve().parents[2]


def test_transitions_reach_the_sink_readable_and_the_file_as_json(tmp_path, db, clock, config):
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
    events = [(level, logline.parse(m)) for level, m in lines]
    assert [(lvl, e[0]) for lvl, e in events] == [
        ("info", "fsm.transition"), ("info", "fsm.transition"),
        ("info", "fsm.trigger_refused"), ("error", "really.broken")]
    assert lines[1][1].startswith("fsm.transition machine=circuit_breaker instance_id=b1 ")
    moved = events[1][1][1]
    assert (moved["trigger"], moved["source"], moved["dest"]) == ("failure", "closed", "open")
    assert all("\n" not in m and not m.startswith("{") for _, m in lines)
    in_file = [json.loads(x) for x in log_file.read_text().splitlines()]
    assert [e["event"] for e in in_file] == [e[0] for _, e in events]
    assert all("timestamp" in e for e in in_file)
    assert in_file[1]["dest"] == "open" and in_file[1]["level"] == "info"


def test_warning_maps_to_warn_and_foreign_stdlib_records_are_rendered():
    lines = []
    logs.configure(lambda message, level: lines.append((level, message)))
    logging.getLogger("someone.else").warning("careful %s", "now")
    structlog.get_logger("hive").warning("hive.careful", n=1)
    assert [lvl for lvl, _ in lines] == ["warn", "warn"]
    assert lines[0][1] == "careful now"
    assert lines[1][1] == "hive.careful n=1"


def test_a_readable_line_quotes_what_would_be_ambiguous_and_parses_back():
    lines = []
    logs.configure(lambda message, level: lines.append(message))
    structlog.get_logger("t").info("join.refused", peer_id="02ab", error='ticket "x" used\nnow',
                                   code=2001, ok=True, none=None, data={"b": 1, "a": [1, 2]},
                                   ratio=0.5)
    line = lines[0]
    assert line == ('join.refused peer_id=02ab error="ticket \\"x\\" used\\nnow" code=2001 '
                    'ok=true none=null data={"a":[1,2],"b":1} ratio=0.5')
    assert logline.parse(line) == ("join.refused", {
        "peer_id": "02ab", "error": 'ticket "x" used\nnow', "code": "2001", "ok": "true",
        "none": "null", "data": '{"a":[1,2],"b":1}', "ratio": "0.5"})


def test_an_exception_is_one_line_with_its_type_message_and_frame(tmp_path):
    lines = []
    log_file = tmp_path / "hive.jsonl"
    logs.configure(lambda message, level: lines.append((level, message)), log_file=str(log_file))
    try:
        {}["missing"]
    except KeyError:
        structlog.get_logger("t").exception("worker.failed", item="tick")
    for h in logging.getLogger().handlers:
        h.flush()
    level, line = lines[0]
    assert level == "error" and "\n" not in line
    event, fields = logline.parse(line)
    assert event == "worker.failed" and fields["item"] == "tick"
    assert fields["exception"].startswith("KeyError: 'missing' (")
    assert "test_logging.py:" in fields["exception"]
    frames = json.loads(log_file.read_text())["exception"][0]["frames"]
    assert frames and frames[-1]["name"].startswith("test_an_exception")


def test_configured_logging_writes_nothing_to_stdout():
    code = ("import structlog, logging; from handlers.frame import logs; "
            "logs.configure(lambda m, l: None); "
            "structlog.get_logger('x').info('hello', a=1); logging.getLogger('y').error('e')")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
