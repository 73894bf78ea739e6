"""Fixtures for cl-hive's tests: one `fleet` API over real CLN (pyln-testing) or the stand-in.

Real CLN is used when lightningd, bitcoind and bitcoin-cli are all on PATH (unless
HIVE_TEST_BACKEND=standin); otherwise the stand-in in tests/standin runs the real plugin
processes. Markers: `real_cln` (needs the real binaries), `standin_only` (needs chaos knobs,
fake data or fault injection)."""
import logging
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # so `tests.standin` imports from anywhere

from tests.standin.backend import (PROBE_PLUGIN, RealFleet, StandinFleet,  # noqa: E402
                                   missing_real_binaries, use_real_cln)

USE_REAL_CLN = use_real_cln()
if USE_REAL_CLN:
    from pyln.testing.fixtures import *  # noqa: F401,F403,E402  (node_factory and friends)


def pytest_configure(config):
    config.addinivalue_line("markers", "real_cln: needs lightningd, bitcoind and bitcoin-cli on PATH")
    config.addinivalue_line("markers", "standin_only: needs the stand-in (chaos, fake data, fault injection)")
    # Node logs go to the `standin` logger; pytest shows them when a test fails.
    logging.getLogger("standin").setLevel(logging.DEBUG)


def pytest_collection_modifyitems(config, items):
    missing = missing_real_binaries()
    for item in items:
        if "real_cln" in item.keywords and not USE_REAL_CLN:
            why = ("real CLN binaries not on PATH: " + ", ".join(missing)) if missing else \
                "HIVE_TEST_BACKEND=standin"
            item.add_marker(pytest.mark.skip(reason=why))
        if "standin_only" in item.keywords and USE_REAL_CLN:
            item.add_marker(pytest.mark.skip(reason="stand-in only: runs against the stand-in, not real CLN"))


def _standin(fleet_kwargs):
    fleet = StandinFleet(**fleet_kwargs)
    try:
        yield fleet
    finally:
        problems = fleet.teardown()
        if problems:
            pytest.fail("stand-in teardown found problems:\n  " + "\n  ".join(problems), pytrace=False)


@pytest.fixture
def fleet(request):
    """Nodes running cl-hive (/work/main/plugin.py): `a, b = fleet.nodes(2)`."""
    if USE_REAL_CLN:
        yield RealFleet(request.getfixturevalue("node_factory"))
    else:
        yield from _standin({})


@pytest.fixture
def standin_fleet():
    """Always the stand-in; nodes run the probe plugin unless told otherwise (for its own tests)."""
    yield from _standin({"plugin": PROBE_PLUGIN})
