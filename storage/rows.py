"""Turning SQLite rows into dicts, with the JSON columns decoded."""
from __future__ import annotations

import json


def decoded(cursor, *json_columns: str) -> list[dict]:
    out = []
    for r in cursor:
        d = dict(r)
        for col in json_columns:
            d[col] = json.loads(d[col])
        out.append(d)
    return out
