"""The README's options table describes the options the plugin declares."""
import re
from pathlib import Path

from handlers.frame.config import OPTIONS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_readme_lists_every_option_with_its_type_default_and_dynamism():
    rows = {m.group(1): (m.group(2), m.group(3), m.group(4)) for m in re.finditer(
        r"^\| `(hive-[a-z-]+)` \| (\w+) \| ([^|]+) \|[^|]+\| (yes|no) \|$", README, re.M)}
    assert set(rows) == {o.name for o in OPTIONS}
    for o in OPTIONS:
        typ, default, dynamic = rows[o.name]
        assert typ == o.type
        assert dynamic == ("yes" if o.dynamic else "no")
        if o.default is not None:     # a bool as lightningd writes it: `false`
            shown = str(o.default).lower() if isinstance(o.default, bool) else o.default
            assert default.strip() == f"`{shown}`"
        if o.min is not None:
            assert f"{o.min} to {o.max}" in README.split(f"`{o.name}`")[1].split("\n")[0]


def test_the_protocol_lists_every_right_per_tier_as_the_code_grants_it():
    from handlers.membership.rights import RIGHTS
    protocol = (Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md").read_text()
    protocol = protocol.split("### Rights per tier")[1].split("###")[0]
    rows = {m.group(1): tuple(t for t, cell in zip(("neophyte", "member", "admin"),
                                                   m.group(2, 3, 4)) if cell.strip() == "yes")
            for m in re.finditer(r"^\| `([a-z_]+)`[^|]*\|([^|]*)\|([^|]*)\|([^|]*)\|$",
                                 protocol, re.M)}
    assert rows == RIGHTS
