"""structlog, configured once: every event becomes one readable line in lightningd's log
(through pyln's `plugin.log`, never stdout; see logline.py) and, when `hive-log-file` is
set, one JSON line in that file (for machines: jq, log shippers)."""
from __future__ import annotations

import logging

import structlog

from handlers.frame import logline

# Python level -> lightningd level. `error` is recorded as BROKEN: only real faults.
LEVELS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn",
          logging.ERROR: "error", logging.CRITICAL: "error"}

_SHARED = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
]


class LightningdLogHandler(logging.Handler):
    """Hands each formatted record to a sink such as `plugin.log(message, level)`."""

    def __init__(self, sink):
        super().__init__()
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = LEVELS.get(record.levelno, "info" if record.levelno < logging.ERROR
                               else "error")
            self.sink(self.format(record), level)
        except Exception:   # logging must never take the plugin down; stdlib's own path
            self.handleError(record)


def _formatter(json_lines: bool) -> logging.Formatter:
    chain = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if json_lines:
        chain.append(structlog.processors.TimeStamper(fmt="iso", utc=True))
        chain.append(structlog.processors.JSONRenderer(sort_keys=True, default=str))
    else:       # lightningd stamps its own lines
        chain.append(logline.render)
    return structlog.stdlib.ProcessorFormatter(foreign_pre_chain=_SHARED, processors=chain)


def configure(sink, level: int = logging.INFO, log_file: str | None = None) -> None:
    """Route structlog and stdlib logging to `sink` (and `log_file`). Call after pyln's
    `Plugin()` exists: it installs its own root handler, which this replaces."""
    structlog.configure(
        # Level first: a debug line below the level costs a check, not the whole chain.
        processors=[structlog.stdlib.filter_by_level] + _SHARED + [
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Caching would pin module-level loggers to this configuration for good, and
        # tests swap it (structlog.testing.capture_logs); it costs a few us per event.
        cache_logger_on_first_use=False,
    )
    handler = LightningdLogHandler(sink)
    handler.setFormatter(_formatter(json_lines=False))
    handlers: list[logging.Handler] = [handler]
    if log_file:
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(_formatter(json_lines=True))
        handlers.append(file_handler)
    root = logging.getLogger()
    for old in root.handlers:
        if isinstance(old, logging.FileHandler):
            old.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    # transitions logs every callback at INFO; its refusals we log ourselves.
    logging.getLogger("transitions").setLevel(logging.ERROR)
    logging.captureWarnings(True)


def debug_enabled(name: str) -> bool:
    """Whether a debug line of the logger `name` would be written, for a line per message
    (checked before its arguments are gathered: structlog's level filter runs after a
    bind, some 15 us each). True whenever another configuration is in place (a test's
    structlog.testing.capture_logs sees every line)."""
    processors = structlog.get_config()["processors"]
    return (not processors or processors[0] is not structlog.stdlib.filter_by_level
            or logging.getLogger(name).isEnabledFor(logging.DEBUG))
