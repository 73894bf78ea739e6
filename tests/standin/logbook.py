"""A node's log lines and faults: what real lightningd would log, and what it treats as
fatal or BROKEN (a test fails on any fault it did not expect)."""
import logging
import re
import threading
import time
from dataclasses import dataclass, field

_logger = logging.getLogger("standin")


class NodeFault(AssertionError):
    """Something real lightningd treats as fatal or BROKEN happened."""


@dataclass
class Fault:
    kind: str
    plugin: str
    message: str
    time: float = field(default_factory=time.time)

    def __str__(self):
        return "[%s] %s: %s" % (self.kind, self.plugin or "lightningd", self.message)


@dataclass
class LogLine:
    time: float
    level: str
    prefix: str
    message: str

    def __str__(self):
        return "%-7s %s: %s" % (self.level.upper(), self.prefix, self.message)


class LogBook:
    """Mixed into Node: `logs`, `faults`, and waiting on either."""

    def _init_logbook(self):
        self.logs = []
        self.faults = []
        self.expected_faults = []
        self._expect = []
        self._cond = threading.Condition()

    def log(self, level, prefix, message):
        line = LogLine(time.time(), level, prefix, message)
        with self._cond:
            self.logs.append(line)
            self._cond.notify_all()
        _logger.debug("%s %s", self.name, line)

    def plugin_log(self, plugin):
        """The messages `plugin` (a file name) logged, oldest first (as on real lightningd)."""
        with self._cond:
            return [line.message for line in self.logs if line.prefix == "plugin-" + plugin]

    def plugin_lines(self, plugin):
        """plugin_log with each line's time and level."""
        with self._cond:
            return [line for line in self.logs if line.prefix == "plugin-" + plugin]

    def add_fault(self, kind, plugin, message):
        f = Fault(kind, plugin, message)
        with self._cond:
            expected = any(re.search(p, str(f)) for p in self._expect)
            (self.expected_faults if expected else self.faults).append(f)
            self._cond.notify_all()
        self.log("broken", "standin", ("expected " if expected else "") + "FAULT " + str(f))

    def expect_fault(self, pattern):
        """Faults matching `pattern` (regex on str(fault)) from now on do not fail the test."""
        with self._cond:
            self._expect.append(pattern)

    def wait_for_fault(self, pattern, timeout=10.0):
        """Wait for a fault matching `pattern`, remove it from the books and return it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for lst in (self.faults, self.expected_faults):
                    for f in lst:
                        if re.search(pattern, str(f)):
                            lst.remove(f)
                            return f
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("%s: no fault matching %r within %ss; faults: %s" % (
                        self.name, pattern, timeout, [str(f) for f in self.faults + self.expected_faults]))
                self._cond.wait(left)

    def clear_faults(self):
        with self._cond:
            out, self.faults = self.faults, []
        return out

    def check_faults(self):
        with self._cond:
            faults = list(self.faults)
        if faults:
            raise NodeFault("%s recorded %d fault(s):\n  %s" % (self.name, len(faults), "\n  ".join(map(str, faults))))

    def wait_for_log(self, pattern, timeout=10.0, since=0, check_faults=True):
        """Wait for a log line ("<prefix>: <message>") matching regex `pattern`, at index >= since."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        with self._cond:
            while True:
                for line in self.logs[since:]:
                    if rx.search("%s: %s" % (line.prefix, line.message)):
                        return line
                if check_faults and self.faults:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = "\n  ".join(str(x) for x in self.logs[-15:])
                    raise TimeoutError("%s: no log line matching %r within %ss; last lines:\n  %s"
                                       % (self.name, pattern, timeout, tail))
                self._cond.wait(left)
        self.check_faults()
