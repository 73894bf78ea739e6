"""docs/ERRORS.md lists exactly the error codes handlers/frame/errors.py defines, and the
README points to it."""
import re
from pathlib import Path

from handlers.frame import errors

ROOT = Path(__file__).resolve().parents[2]


def test_errors_doc_lists_exactly_the_codes_in_errors_py():
    doc = (ROOT / "docs" / "ERRORS.md").read_text()
    rows = {m.group(2): int(m.group(1)) for m in re.finditer(
        r"^\| (-?\d+) \| `([A-Z_]+)` \| (.+) \|$", doc, re.M)}
    assert rows == errors.codes()
    assert len(set(rows.values())) == len(rows), "two names share a code"


def test_cl_hives_own_codes_stay_in_their_range_away_from_lightningds():
    own = {name: code for name, code in errors.codes().items() if code != errors.INVALID_PARAMS}
    assert all(4480 <= code <= 4499 for code in own.values()), own


def test_the_readme_links_the_error_table():
    assert "docs/ERRORS.md" in (ROOT / "README.md").read_text()
