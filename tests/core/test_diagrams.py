"""The committed diagrams are what the machine tables produce, and the check notices a
table that changed without its diagrams being regenerated."""
import dataclasses
import subprocess
import sys
from pathlib import Path

from machines import SPECS
from machines import diagram
from machines.spec import Rule

ROOT = Path(__file__).resolve().parents[2]


def test_committed_diagrams_match_the_tables():
    assert diagram.check(ROOT / "diagrams") == []


def test_check_fails_after_a_table_changes(monkeypatch):
    spec = SPECS["intent_lock"]
    changed = dataclasses.replace(spec, rules=spec.rules + (Rule("nudge", ("pending",), None),))
    monkeypatch.setitem(SPECS, "intent_lock", changed)
    assert diagram.check(ROOT / "diagrams") == ["intent_lock.md", "intent_lock.dot"]


def test_make_check_diagrams_exit_status(tmp_path):
    out = subprocess.run([sys.executable, "-m", "machines.diagram", "check", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "stale or unexpected diagrams" in out.stderr
    subprocess.run([sys.executable, "-m", "machines.diagram", "write", str(tmp_path)],
                   cwd=ROOT, check=True, capture_output=True, timeout=60)
    out = subprocess.run([sys.executable, "-m", "machines.diagram", "check", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0


def test_every_state_and_rule_appears_in_the_mermaid_text():
    for spec in SPECS.values():
        text = diagram.mermaid(spec)
        for rule in spec.rules:
            for source in rule.sources:
                assert f"{source} --> {rule.dest or source}: {rule.trigger}" in text
        for state in spec.terminal:
            assert f"{state} --> [*]" in text
