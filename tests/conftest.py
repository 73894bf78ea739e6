"""Fixtures for cl-hive's tests: one `fleet` API over two backends, and every test that uses
`fleet` runs on both: `[standin]` (tests/standin runs the real plugin processes) and
`[lightningd]` (real Core Lightning through pyln-testing, on our own regtest chain in
tests/chain; needs only `lightningd` on PATH, else these are skipped with the reason;
HIVE_TEST_BACKEND=standin skips them too). Markers: `real_cln` (lightningd only),
`standin_only` (needs chaos knobs, fake data or fault injection)."""
import logging
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # so `tests.standin` imports from anywhere

from tests.lightningd_fleet import LightningdFleet, lightningd_missing, pyln_environment  # noqa: E402
from tests.standin.backend import PROBE_PLUGIN, StandinFleet  # noqa: E402

LIGHTNINGD_MISSING = lightningd_missing()
if LIGHTNINGD_MISSING is None:
    pyln_environment()      # before pyln.testing reads it
    # pyln-testing's fixtures behind node_factory; not its autouse ones (they reset logging).
    from pyln.testing.fixtures import (db_provider, directory, executor, node_cls,  # noqa: F401,E402
                                       node_factory, teardown_checks, test_base_dir, test_name)

    from tests.chain.pyln_bitcoind import RegtestBitcoind  # noqa: E402

    @pytest.fixture
    def bitcoind():
        """Our regtest chain where pyln-testing expects bitcoind."""
        chain = RegtestBitcoind()
        yield chain
        chain.stop()

    @pytest.fixture
    def jsonschemas():
        return {}   # the schemas live in Core Lightning's source tree, not here

BACKENDS = [pytest.param("standin"), pytest.param("lightningd", marks=pytest.mark.lightningd)]


def pytest_configure(config):
    config.addinivalue_line("markers", "real_cln: runs on real lightningd only")
    config.addinivalue_line("markers", "standin_only: needs the stand-in (chaos, fake data, fault injection)")
    config.addinivalue_line("markers", "lightningd: this run is on real lightningd (set by the `fleet` fixture)")
    # Node logs go to the `standin` logger; pytest shows them when a test fails.
    logging.getLogger("standin").setLevel(logging.DEBUG)


def _backend(item):
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("fleet") if callspec else None


def pytest_collection_modifyitems(config, items):
    keep, dropped = [], []
    for item in items:
        backend = _backend(item)
        if (backend == "lightningd" and "standin_only" in item.keywords) or \
                (backend == "standin" and "real_cln" in item.keywords):
            dropped.append(item)          # a test for one backend is not run on the other
            continue
        if backend == "lightningd" and LIGHTNINGD_MISSING:
            item.add_marker(pytest.mark.skip(reason="real lightningd: " + LIGHTNINGD_MISSING))
        keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # pyln-testing's `directory` fixture keeps a failed test's node dirs when it sees rep_call.
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _standin(fleet_kwargs):
    fleet = StandinFleet(**fleet_kwargs)
    try:
        yield fleet
    finally:
        problems = fleet.teardown()
        if problems:
            pytest.fail("stand-in teardown found problems:\n  " + "\n  ".join(problems), pytrace=False)


@pytest.fixture(params=BACKENDS)
def fleet(request):
    """Nodes running cl-hive (the repo's plugin.py): `a, b = fleet.nodes(2)`."""
    if request.param == "lightningd":
        yield LightningdFleet(request.getfixturevalue("node_factory"), request.getfixturevalue("bitcoind"))
    else:
        yield from _standin({})


@pytest.fixture
def standin_fleet():
    """Always the stand-in; nodes run the probe plugin unless told otherwise (for its own tests)."""
    yield from _standin({"plugin": PROBE_PLUGIN})
