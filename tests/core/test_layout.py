"""Imports flow one way: machines and storage import nothing of handlers; inside handlers,
each wing imports only itself and the wings below it (frame < wire < membership <
bridge < hivemap, intents, contribution: the intents' executors call companions through
the bridge, and the contribution ledger applies its throttle through the bridge's fee
policy, which reads the signal from storage; the council's bans reach the bridge and
the HiveMap; governance executes its actions through
intent locks and the bridge), and only the top (router, hive, status) sees every wing."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RANK = {"frame": 0, "wire": 1, "membership": 2, "bridge": 3, "hivemap": 4, "intents": 4,
        "contribution": 4, "council": 5, "governance": 6, "planner": 7}


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def _wing(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "handlers" and parts[1] in RANK else None


def _modules(folder: str):
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("folder", ["machines", "storage"])
def test_lower_layers_import_no_handler(folder):
    for path in _modules(folder):
        assert not any(m.split(".")[0] == "handlers" for m in _imports(path)), path


def test_every_wing_imports_only_itself_and_wings_below():
    for wing, rank in RANK.items():
        for path in _modules(f"handlers/{wing}"):
            for module in _imports(path):
                if module.split(".")[0] != "handlers" or module in ("handlers", "handlers.__version__"):
                    continue
                other = _wing(module)
                assert other is not None, f"{path.relative_to(ROOT)} imports {module} (above every wing)"
                assert other == wing or RANK[other] < rank, \
                    f"{path.relative_to(ROOT)} imports {module}"


def test_the_checker_sees_an_upward_import(tmp_path):
    # The rule above must be able to fail: an intents module importing the router is caught.
    bad = tmp_path / "bad.py"
    bad.write_text("from handlers import router\nfrom handlers.hivemap import gossip\n")
    found = {m for m in _imports(bad) if m.startswith("handlers")}
    assert "handlers.router" in found and _wing("handlers.router") is None
    assert _wing("handlers.hivemap.gossip") == "hivemap" and RANK["hivemap"] == RANK["intents"]
