"""Fixtures for machine, storage and handler tests: real SQLite files, a manual clock."""
import logging

import pytest
import structlog

from handlers.frame import config as cfg
from handlers.frame import refusals
from handlers.frame.clock import ManualClock
from handlers.frame.dispatch import Dispatcher
from handlers.intents import acks
from storage.db import Database


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def config(tmp_path):
    return cfg.from_init({}, str(tmp_path))


@pytest.fixture
def db(config):
    database = Database(config.db_path)
    database.migrate()
    yield database
    database.close()


@pytest.fixture
def dispatcher(db, clock, config):
    return Dispatcher(db, clock, lambda: config)


@pytest.fixture
def hold_only(monkeypatch):
    """Intents commit by the seed's quiet-hold rule, with no majority acknowledgements:
    the rule an intent recorded before acknowledgements existed still follows. For tests
    of the hold, tie-break and commit-notice protocol underneath the majority."""
    monkeypatch.setattr(acks, "needs_majority", lambda _intent_type: False)


@pytest.fixture(autouse=True)
def _fresh_refusal_budgets():
    """Refusal-log budgets are process-wide; no test inherits another's."""
    refusals.reset()
    yield
    refusals.reset()


@pytest.fixture
def every_refusal_logged():
    """For tests that read why each message was refused: no per-peer log budget."""
    refusals.reset(burst=10**9)


@pytest.fixture(autouse=True)
def _fresh_logging():
    """Each test starts with structlog's defaults and the root logger as it found it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()
    for h in root.handlers:
        if h not in handlers:
            h.close()
    root.handlers[:] = handlers
    root.setLevel(level)
