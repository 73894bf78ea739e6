"""The docs describe the code as it is: docs/OPERATOR.md's options table is the one the
option specs generate, every command is in the README and the guide, and the protocol's
rights table is the code's."""
import re
from pathlib import Path

from handlers.frame import options_doc
from handlers.frame.config import OPTIONS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
OPERATOR = (ROOT / "docs" / "OPERATOR.md").read_text()


def test_the_operator_guide_has_the_options_table_the_code_generates():
    # What `make check-options-doc` (run by `make test`) checks, also as a test.
    assert options_doc.render(OPERATOR) == OPERATOR
    assert options_doc.main(["check", str(ROOT / "docs" / "OPERATOR.md")]) == 0
    for o in OPTIONS:
        row = next(line for line in OPERATOR.splitlines() if line.startswith(f"| `{o.name}` |"))
        assert f"| {'yes' if o.dynamic else 'no'} |" in row


def test_the_options_check_fails_on_a_stale_or_missing_table(tmp_path):
    stale = OPERATOR.replace("| `hive-tick-seconds` | int | `5` |", "| `hive-tick-seconds` | int | `7` |")
    assert stale != OPERATOR and options_doc.render(stale) == OPERATOR
    doc = tmp_path / "OPERATOR.md"
    doc.write_text(stale)
    assert options_doc.main(["check", str(doc)]) == 1
    doc.write_text("no markers here")
    assert options_doc.main(["check", str(doc)]) == 1
    doc.write_text(stale)
    assert options_doc.main(["write", str(doc)]) == 0 and doc.read_text() == OPERATOR


def test_the_readme_and_the_guide_name_every_command():
    import ast
    plugin = ast.parse((ROOT / "plugin.py").read_text())
    commands = {d.args[0].value for node in ast.walk(plugin) if isinstance(node, ast.FunctionDef)
                for d in node.decorator_list if isinstance(d, ast.Call)
                and getattr(d.func, "attr", "") == "command"}
    assert {"hive-events", "hive-backup", "hive-status"} <= commands and len(commands) >= 24
    for name in commands:
        assert f"`{name}" in README, name
        assert f"### `{name}" in OPERATOR, name


def test_the_protocol_lists_every_right_per_tier_as_the_code_grants_it():
    from handlers.membership.rights import RIGHTS
    protocol = (Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md").read_text()
    protocol = protocol.split("### Rights per tier")[1].split("###")[0]
    rows = {m.group(1): tuple(t for t, cell in zip(("neophyte", "member", "admin"),
                                                   m.group(2, 3, 4)) if cell.strip() == "yes")
            for m in re.finditer(r"^\| `([a-z_]+)`[^|]*\|([^|]*)\|([^|]*)\|([^|]*)\|$",
                                 protocol, re.M)}
    assert rows == RIGHTS
