"""Every name the code uses is defined. A tick step that hits an undefined name is only
logged (the tick isolates its steps), so unit tests pass and the fault shows up as BROKEN
lines in a fleet's log; pyflakes finds it statically, in seconds."""
from pathlib import Path

from pyflakes import api, messages
from pyflakes.reporter import Reporter

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("handlers", "machines", "storage", "bench", "tests")
# What would fail at run time; style findings (unused imports) are not this test's business.
FATAL = (messages.UndefinedName, messages.UndefinedLocal, messages.UndefinedExport)


class _Collect(Reporter):
    def __init__(self):
        super().__init__(None, None)
        self.found = []

    def flake(self, message):
        if isinstance(message, FATAL):
            self.found.append(str(message))

    def syntaxError(self, filename, msg, lineno, offset, text):
        self.found.append(f"{filename}:{lineno}: {msg}")

    def unexpectedError(self, filename, msg):
        self.found.append(f"{filename}: {msg}")


def _sources():
    yield ROOT / "plugin.py"
    yield ROOT / "cl-hive.py"
    for folder in FOLDERS:
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_no_module_uses_an_undefined_name():
    reporter = _Collect()
    for path in _sources():
        api.checkPath(str(path), reporter)
    assert reporter.found == []


def test_the_check_finds_an_undefined_name(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def on_tick(ctx):\n    _queue(ctx)\n")
    reporter = _Collect()
    api.checkPath(str(bad), reporter)
    assert len(reporter.found) == 1 and "_queue" in reporter.found[0]
