"""Fuzzed hive messages through the real plugin process (see tests/fuzz/process.py): the
admin's plugin answers every custommsg hook, stays up, logs no error, and its hive and
members are what they were. A bounded run; `make fuzz` runs more."""
import pytest

from tests.fuzz import process


@pytest.mark.standin_only   # reads the stand-in's trace of delivered messages and its hook faults
def test_fuzzed_messages_through_the_plugin_process(fleet):
    figures = process.run(fleet, messages=400, seed=18)
    assert figures["sent"] > 300
    assert figures["plugin_alive"] and figures["identity_unchanged"]
    assert figures["hook_errors"] == [] and figures["error_logs"] == []
