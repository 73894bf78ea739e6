"""Option parsing and validation: init values, setconfig strings, joint rules."""
import pytest

from handlers.frame import config as cfg


def test_defaults(tmp_path):
    c = cfg.from_init({}, str(tmp_path))
    assert c.db_path == str(tmp_path / "cl-hive.db")
    assert (c.governance_mode, c.heartbeat_interval, c.gossip_capacity_threshold_pct) == \
        ("advisor", 300, 10)
    assert c.intent_expire_seconds > c.intent_hold_seconds
    assert c.log_file is None


def test_relative_and_absolute_db_paths(tmp_path):
    assert cfg.from_init({"hive-db-path": "x/h.db"}, "/ld").db_path == "/ld/x/h.db"
    assert cfg.from_init({"hive-db-path": str(tmp_path / "h.db")}, "/ld").db_path == \
        str(tmp_path / "h.db")


@pytest.mark.parametrize("options,message", [
    ({"hive-heartbeat-interval": 5}, "hive-heartbeat-interval: 5 is out of range: expected "
                                     "an integer from 60 to 3600"),
    ({"hive-governance-mode": "dictator"}, "hive-governance-mode: 'dictator' is not allowed: "
                                           "expected one of advisor|autonomous|oracle"),
    ({"hive-max-members": "many"}, "hive-max-members: expected an integer from 2 to 1000"),
    ({"hive-max-members": True}, "hive-max-members: expected an integer"),
    ({"hive-intent-hold-seconds": 600, "hive-intent-expire-seconds": 600},
     "hive-intent-expire-seconds: 600 must exceed hive-intent-hold-seconds \\(600\\)"),
    ({"hive-db-path": "dir/"}, "hive-db-path: expected a file name"),
    ({"hive-bogus": 1}, "hive-bogus: not an option of cl-hive"),
])
def test_invalid_init_values_name_the_option_and_the_allowed_range(options, message):
    with pytest.raises(cfg.ConfigError, match=message):
        cfg.from_init(options, "/ld")


def test_setconfig_parses_strings_and_keeps_the_old_snapshot_on_error():
    c = cfg.from_init({}, "/ld")
    c2 = cfg.with_change(c, "hive-heartbeat-interval", "120")
    assert c2.heartbeat_interval == 120 and c.heartbeat_interval == 300
    with pytest.raises(cfg.ConfigError, match="hive-intent-expire-seconds: 30 must exceed"):
        cfg.with_change(c, "hive-intent-expire-seconds", "30")
    with pytest.raises(cfg.ConfigError, match="cannot be changed while running"):
        cfg.with_change(c, "hive-db-path", "/tmp/other.db")
    with pytest.raises(cfg.ConfigError, match="a value is required"):
        cfg.with_change(c, "hive-max-members", None)


def test_every_option_is_named_hive_and_typed_as_lightningd_knows():
    for opt in cfg.OPTIONS:
        assert opt.name.startswith("hive-")
        assert opt.type in ("int", "bool", "string")
        assert (opt.min is None) == (opt.type != "int" and not opt.decimal)
        if opt.default is not None:
            want = float(opt.default) if opt.decimal else opt.default
            assert cfg.coerce(opt, opt.default) == want
        snapshot_fields = set(cfg.ConfigSnapshot.__dataclass_fields__)
        assert opt.field in snapshot_fields


def test_snapshot_is_immutable():
    c = cfg.from_init({}, "/ld")
    with pytest.raises(AttributeError):
        c.max_members = 3


def test_contribution_ratios_are_numbers_and_release_must_exceed_throttle():
    c = cfg.from_init({}, "/ln")
    assert (c.contribution_throttle_ratio, c.contribution_release_ratio) == (0.5, 0.6)
    assert cfg.with_change(c, "hive-contribution-release-ratio", "0.75").contribution_release_ratio == 0.75
    for bad in ("half", "nan", "-0.1", "11"):
        with pytest.raises(cfg.ConfigError, match="hive-contribution-throttle-ratio"):
            cfg.with_change(c, "hive-contribution-throttle-ratio", bad)
    with pytest.raises(cfg.ConfigError, match="hive-contribution-release-ratio: 0.5 must exceed"):
        cfg.with_change(c, "hive-contribution-release-ratio", "0.5")
    with pytest.raises(cfg.ConfigError, match="hive-contribution-release-ratio"):
        cfg.from_init({"hive-contribution-throttle-ratio": "0.7"}, "/ln")


def test_oracle_mode_needs_an_http_url_set_first(tmp_path):
    with pytest.raises(cfg.ConfigError, match="hive-governance-mode: oracle needs hive-oracle-url"):
        cfg.from_init({"hive-governance-mode": "oracle"}, str(tmp_path))
    with pytest.raises(cfg.ConfigError, match="hive-oracle-url: expected an http"):
        cfg.from_init({"hive-oracle-url": "file:///etc/passwd"}, str(tmp_path))
    snap = cfg.from_init({}, str(tmp_path))
    with pytest.raises(cfg.ConfigError, match="oracle needs hive-oracle-url"):
        cfg.with_change(snap, "hive-governance-mode", "oracle")
    snap = cfg.with_change(snap, "hive-oracle-url", "http://127.0.0.1:8088/")
    snap = cfg.with_change(snap, "hive-governance-mode", "oracle")
    assert (snap.governance_mode, snap.oracle_url) == ("oracle", "http://127.0.0.1:8088/")
    assert snap.oracle_deadline_seconds > snap.oracle_timeout_seconds + snap.tick_seconds


def test_autonomous_limits_are_dynamic_and_bounded(tmp_path):
    snap = cfg.from_init({}, str(tmp_path))
    snap = cfg.with_change(snap, "hive-autonomous-budget-sat", "0")
    assert snap.autonomous_budget_sat == 0              # no sats approved alone
    with pytest.raises(cfg.ConfigError, match="hive-autonomous-max-actions-per-day: -1 is out"):
        cfg.with_change(snap, "hive-autonomous-max-actions-per-day", "-1")
