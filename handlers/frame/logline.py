"""The readable line lightningd's log gets for each event: the event name, then its
key=value pairs in the order they were logged, on one line:

    fsm.transition machine=circuit_breaker instance_id=b1 trigger=failure source=closed dest=open

A value with a space, quote, `=` or newline is JSON-quoted; dicts and lists are compact
JSON; an exception is its type, message and innermost frame (the whole traceback goes to
`hive-log-file`). Level and logger are not repeated: lightningd shows the level itself and
event names carry their module (`fsm.`, `bridge.`, `join.`)."""
from __future__ import annotations

import json
import re

_BARE = re.compile(r"^[^\s\"'=\\]+$")
# Keys lightningd's line already shows (level) or that only add noise to a person.
_DROPPED = ("level", "logger", "timestamp")


def value_text(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    text = str(value)
    return text if _BARE.match(text) else json.dumps(text)


def exception_text(stacks) -> str:
    """`Type: message (file:line in function)` from structlog's exception dicts."""
    if not isinstance(stacks, list) or not stacks or not isinstance(stacks[-1], dict):
        return str(stacks)
    last = stacks[-1]
    text = f"{last.get('exc_type')}: {last.get('exc_value')}"
    frames = last.get("frames") or []
    if frames:
        f = frames[-1]
        text += f" ({f.get('filename')}:{f.get('lineno')} in {f.get('name')})"
    return text


def render(_logger, _method, event_dict: dict) -> str:
    """A structlog renderer (the last processor of the lightningd sink's formatter)."""
    event = str(event_dict.pop("event", "")).replace("\n", " ")
    parts = [event or "(no event)"]
    for key, value in event_dict.items():
        if key in _DROPPED:
            continue
        text = exception_text(value) if key == "exception" else value
        parts.append(f"{key}={value_text(text)}")
    return " ".join(parts)


def parse(line: str) -> tuple[str, dict[str, str]]:
    """The event name and the raw key=value texts of a readable line (for tests and the
    demo; JSON values stay text). A value is bare or one JSON string/object/list."""
    event, _, rest = line.partition(" ")
    fields: dict[str, str] = {}
    decoder = json.JSONDecoder()
    i = 0
    while i < len(rest):
        eq = rest.find("=", i)
        if eq < 0:
            break
        key = rest[i:eq]
        j = eq + 1
        if j < len(rest) and rest[j] in "\"{[":
            _, end = decoder.raw_decode(rest, j)
            fields[key] = rest[j:end] if rest[j] != '"' else json.loads(rest[j:end])
        else:
            end = rest.find(" ", j)
            end = len(rest) if end < 0 else end
            fields[key] = rest[j:end]
        i = end + 1
    return event, fields
