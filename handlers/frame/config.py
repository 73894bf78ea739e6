"""The plugin's options, declared once as data, and the immutable `ConfigSnapshot`.

lightningd checks an option's type when it parses it; we still check types here (init
and `setconfig` hand us JSON values and strings respectively), then ranges, choices and
rules that join two options. Handlers only ever see a whole, valid snapshot.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Any


class ConfigError(ValueError):
    def __init__(self, option: str, message: str):
        self.option = option
        super().__init__(f"{option}: {message}")


@dataclass(frozen=True)
class OptionSpec:
    name: str
    field: str
    type: str                      # lightningd option type: int | bool | string
    default: Any
    description: str
    min: int | None = None
    max: int | None = None
    choices: tuple[str, ...] = ()
    dynamic: bool = False
    # A string option read as a number from min to max (lightningd has no decimal type).
    decimal: bool = False

    def allowed(self) -> str:
        if self.decimal:
            return f"a number from {self.min} to {self.max}"
        if self.choices:
            return "one of " + "|".join(self.choices)
        if self.min is not None:
            return f"an integer from {self.min} to {self.max}"
        return {"bool": "true or false", "string": "a string"}.get(self.type, self.type)


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("hive-db-path", "db_path", "string", None,
               "SQLite database file; unset means <lightning-dir>/cl-hive.db. A relative "
               "path is taken from the lightning-dir."),
    OptionSpec("hive-governance-mode", "governance_mode", "string", "advisor",
               "Who approves coordinated actions: advisor (the operator), autonomous "
               "(the plugin), oracle (an external decider).",
               choices=("advisor", "autonomous", "oracle"), dynamic=True),
    OptionSpec("hive-heartbeat-interval", "heartbeat_interval", "int", 300,
               "Seconds between state broadcasts when nothing else was sent (60-3600).",
               min=60, max=3600, dynamic=True),
    OptionSpec("hive-sync-interval", "sync_interval", "int", 60,
               "Seconds between fleet-hash checks with connected members (2-3600).",
               min=2, max=3600, dynamic=True),
    OptionSpec("hive-gossip-capacity-threshold-pct", "gossip_capacity_threshold_pct", "int", 10,
               "Broadcast our state when capacity changed by more than this percent (1-100).",
               min=1, max=100, dynamic=True),
    OptionSpec("hive-intent-hold-seconds", "intent_hold_seconds", "int", 60,
               "Seconds an announced intent waits for conflicts before it commits (5-3600).",
               min=5, max=3600, dynamic=True),
    OptionSpec("hive-intent-expire-seconds", "intent_expire_seconds", "int", 600,
               "Seconds after its announce at which an unfinished intent expires; must "
               "exceed hive-intent-hold-seconds (10-86400).",
               min=10, max=86400, dynamic=True),
    OptionSpec("hive-ticket-valid-hours", "ticket_valid_hours", "int", 24,
               "Default validity of an invite ticket in hours (1-720).",
               min=1, max=720, dynamic=True),
    # 1000: no message carries every member (WELCOME holds two admissions; the membership
    # sync is chunked and paced); 1000 is what the fleet simulation measures.
    OptionSpec("hive-max-members", "max_members", "int", 50,
               "Most members the hive admits (2-1000).", min=2, max=1000, dynamic=True),
    OptionSpec("hive-handshake-timeout-seconds", "handshake_timeout_seconds", "int", 60,
               "Seconds a handshake step may wait for the peer's answer (5-600).",
               min=5, max=600, dynamic=True),
    OptionSpec("hive-max-handshake-sessions", "max_handshake_sessions", "int", 16,
               "Most handshake sessions an admin keeps open at once (1-256).",
               min=1, max=256, dynamic=True),
    OptionSpec("hive-pending-action-expire-hours", "pending_action_expire_hours", "int", 24,
               "Hours a governance action waits for approval before it expires (1-720).",
               min=1, max=720, dynamic=True),
    OptionSpec("hive-autonomous-budget-sat", "autonomous_budget_sat", "int", 1_000_000,
               "Sats autonomous mode may approve within any 24 hours (the sum of the actions "
               "it approved); beyond it actions wait for the operator (0-2100000000000000).",
               min=0, max=2_100_000_000_000_000, dynamic=True),
    OptionSpec("hive-autonomous-max-action-sat", "autonomous_max_action_sat", "int", 500_000,
               "Largest single action autonomous mode may approve, in sats "
               "(0-2100000000000000).", min=0, max=2_100_000_000_000_000, dynamic=True),
    OptionSpec("hive-autonomous-max-actions-per-day", "autonomous_max_actions_per_day", "int",
               10, "Most actions autonomous mode may approve within any 24 hours (0-10000).",
               min=0, max=10_000, dynamic=True),
    OptionSpec("hive-oracle-url", "oracle_url", "string", None,
               "http(s) URL oracle mode POSTs each action to (docs/ORACLE.md); required "
               "for hive-governance-mode=oracle.", dynamic=True),
    OptionSpec("hive-oracle-timeout-seconds", "oracle_timeout_seconds", "int", 10,
               "Seconds the oracle may take to answer; later, the action waits for the "
               "operator (1-300).", min=1, max=300, dynamic=True),
    OptionSpec("hive-breaker-failure-threshold", "breaker_failure_threshold", "int", 3,
               "Consecutive failed bridge calls that open the circuit breaker (1-100).",
               min=1, max=100, dynamic=True),
    OptionSpec("hive-breaker-reset-seconds", "breaker_reset_seconds", "int", 60,
               "Seconds an open circuit breaker waits before one probe call (1-3600).",
               min=1, max=3600, dynamic=True),
    OptionSpec("hive-rpc-timeout-seconds", "rpc_timeout_seconds", "int", 30,
               "Seconds a call to lightningd or a companion plugin may take before cl-hive "
               "gives up on it; connect and channel opens get four times this (1-600).",
               min=1, max=600, dynamic=True),
    OptionSpec("hive-log-retention-days", "log_retention_days", "int", 90,
               "Days the transition log, finished handshake sessions and pending actions, "
               "and expired invite tickets are kept (1-3650).",
               min=1, max=3650, dynamic=True),
    OptionSpec("hive-bridge-timeout-seconds", "bridge_timeout_seconds", "int", 15,
               "Seconds a call to a companion plugin (or a long lightningd call such as "
               "fundchannel) may take before it counts as timed out (1-600).",
               min=1, max=600, dynamic=True),
    OptionSpec("hive-bridge-check-seconds", "bridge_check_seconds", "int", 60,
               "Seconds between health checks of each companion plugin (2-3600).",
               min=2, max=3600, dynamic=True),
    OptionSpec("hive-tick-seconds", "tick_seconds", "int", 5,
               "Seconds between scheduler ticks that fire due deadlines (1-60).",
               min=1, max=60),
    OptionSpec("hive-contribution-window-days", "contribution_window_days", "int", 30,
               "Days of forwards a member's contribution ratio is taken over; older daily "
               "buckets are deleted (1-365).", min=1, max=365, dynamic=True),
    OptionSpec("hive-contribution-min-sat", "contribution_min_sat", "int", 1_000_000,
               "Sats a member must have received from the fleet within the window before "
               "its ratio is defined (and it can be throttled) (1-2100000000000000).",
               min=1, max=2_100_000_000_000_000, dynamic=True),
    OptionSpec("hive-contribution-throttle-ratio", "contribution_throttle_ratio", "string", "0.5",
               "A member whose forwarded/received ratio falls below this is throttled: its "
               "channels leave the zero-fee fleet policy (0 to 10).",
               min=0, max=10, dynamic=True, decimal=True),
    OptionSpec("hive-contribution-release-ratio", "contribution_release_ratio", "string", "0.6",
               "A throttled member is released when its ratio reaches this (or becomes "
               "undefined); must exceed hive-contribution-throttle-ratio (0 to 10).",
               min=0, max=10, dynamic=True, decimal=True),
    OptionSpec("hive-probation-days", "probation_days", "int", 30,
               "Days a neophyte waits after its admission before it may ask for promotion "
               "and be vouched for (0-365).", min=0, max=365, dynamic=True),
    OptionSpec("hive-auto-vouch", "auto_vouch", "bool", False,
               "Vouch automatically for a neophyte's promotion request once its probation "
               "is over and its value-add score reaches hive-auto-vouch-min-score.",
               dynamic=True),
    OptionSpec("hive-auto-vouch-min-score", "auto_vouch_min_score", "string", "0.5",
               "The value-add score (0 to 1) a neophyte needs for an automatic vouch.",
               min=0, max=1, dynamic=True, decimal=True),
    OptionSpec("hive-proposal-expire-hours", "proposal_expire_hours", "int", 168,
               "Hours a promotion, ban or unban proposal collects votes before it lapses "
               "(1-720).", min=1, max=720, dynamic=True),
    OptionSpec("hive-saturation-pct", "saturation_pct", "int", 20,
               "A target whose fleet share (the fleet's capacity to it over its public "
               "capacity) reaches this percent is saturated: members' CLBoss stop opening "
               "to it (1-100).", min=1, max=100, dynamic=True),
    OptionSpec("hive-saturation-release-pct", "saturation_release_pct", "int", 15,
               "A saturated target is released when its fleet share falls below this "
               "percent; must be below hive-saturation-pct (0-99).",
               min=0, max=99, dynamic=True),
    OptionSpec("hive-planner-interval", "planner_interval", "int", 3600,
               "Seconds between planner cycles; the first runs one interval after the hive "
               "first starts (5-604800).", min=5, max=604_800, dynamic=True),
    OptionSpec("hive-max-expansion-feerate-perkw", "max_expansion_feerate_perkw", "int", 10_000,
               "The planner proposes no channel open while lightningd's opening feerate is "
               "above this, in sat per 1000 weight (253-1000000).",
               min=253, max=1_000_000, dynamic=True),
    OptionSpec("hive-planner-min-channel-sat", "planner_min_channel_sat", "int", 1_000_000,
               "Smallest channel the planner opens, in sats (20000-2100000000000000).",
               min=20_000, max=2_100_000_000_000_000, dynamic=True),
    OptionSpec("hive-planner-max-channel-sat", "planner_max_channel_sat", "int", 10_000_000,
               "Largest channel the planner opens, in sats; at least "
               "hive-planner-min-channel-sat (20000-2100000000000000).",
               min=20_000, max=2_100_000_000_000_000, dynamic=True),
    OptionSpec("hive-planner-reserve-sat", "planner_reserve_sat", "int", 500_000,
               "On-chain sats a member keeps after a planned open; only funds above it "
               "count for the assignment (0-2100000000000000).",
               min=0, max=2_100_000_000_000_000, dynamic=True),
    OptionSpec("hive-log-file", "log_file", "string", None,
               "Also write every log event to this file as JSON lines; unset means no file."),
)

BY_NAME = {o.name: o for o in OPTIONS}


@dataclass(frozen=True)
class ConfigSnapshot:
    lightning_dir: str
    db_path: str
    governance_mode: str
    heartbeat_interval: int
    sync_interval: int
    gossip_capacity_threshold_pct: int
    intent_hold_seconds: int
    intent_expire_seconds: int
    ticket_valid_hours: int
    max_members: int
    handshake_timeout_seconds: int
    max_handshake_sessions: int
    pending_action_expire_hours: int
    autonomous_budget_sat: int
    autonomous_max_action_sat: int
    autonomous_max_actions_per_day: int
    oracle_url: str | None
    oracle_timeout_seconds: int
    breaker_failure_threshold: int
    breaker_reset_seconds: int
    rpc_timeout_seconds: int
    log_retention_days: int
    bridge_timeout_seconds: int
    bridge_check_seconds: int
    tick_seconds: int
    log_file: str | None
    contribution_window_days: int
    contribution_min_sat: int
    contribution_throttle_ratio: float
    contribution_release_ratio: float
    probation_days: int
    auto_vouch: bool
    auto_vouch_min_score: float
    proposal_expire_hours: int
    saturation_pct: int
    saturation_release_pct: int
    planner_interval: int
    max_expansion_feerate_perkw: int
    planner_min_channel_sat: int
    planner_max_channel_sat: int
    planner_reserve_sat: int

    @property
    def pending_action_expire_seconds(self) -> int:
        return self.pending_action_expire_hours * 3600

    @property
    def oracle_deadline_seconds(self) -> int:
        # Past the pool's own timeout (judged at a tick), so that one reports first.
        return self.oracle_timeout_seconds + 2 * self.tick_seconds

    @property
    def log_retention_seconds(self) -> int:
        return self.log_retention_days * 86400

    def public(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def coerce(opt: OptionSpec, value: Any) -> Any:
    """Turn an init value (typed JSON) or a setconfig value (always a string) into the
    option's type, then check its range or choices."""
    if opt.type == "int":
        if isinstance(value, bool):
            raise ConfigError(opt.name, f"expected {opt.allowed()}, got {value!r}")
        if isinstance(value, str):
            try:
                value = int(value.strip(), 10)
            except ValueError:
                raise ConfigError(opt.name, f"expected {opt.allowed()}, got {value!r}") from None
        if not isinstance(value, int):
            raise ConfigError(opt.name, f"expected {opt.allowed()}, got {value!r}")
        if not opt.min <= value <= opt.max:
            raise ConfigError(opt.name, f"{value} is out of range: expected {opt.allowed()}")
        return value
    if opt.type == "bool":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise ConfigError(opt.name, f"expected {opt.allowed()}, got {value!r}")
        return value
    if not isinstance(value, str):
        raise ConfigError(opt.name, f"expected {opt.allowed()}, got {value!r}")
    if opt.decimal:
        return _decimal(opt, value)
    if opt.choices and value not in opt.choices:
        raise ConfigError(opt.name, f"{value!r} is not allowed: expected {opt.allowed()}")
    return value


def _decimal(opt: OptionSpec, value: str) -> float:
    try:
        number = float(value.strip())
    except ValueError:
        raise ConfigError(opt.name, f"expected {opt.allowed()}, got {value!r}") from None
    if not opt.min <= number <= opt.max:     # also refuses nan and inf
        raise ConfigError(opt.name, f"{value} is out of range: expected {opt.allowed()}")
    return number


def _check_joint(values: dict) -> None:
    url = values["oracle_url"]
    if url is not None and not url.startswith(("http://", "https://")):
        raise ConfigError("hive-oracle-url", f"expected an http:// or https:// URL, got {url!r}")
    if values["governance_mode"] == "oracle" and not url:
        raise ConfigError("hive-governance-mode",
                          "oracle needs hive-oracle-url set first")
    if values["contribution_release_ratio"] <= values["contribution_throttle_ratio"]:
        raise ConfigError(
            "hive-contribution-release-ratio",
            f"{values['contribution_release_ratio']} must exceed "
            f"hive-contribution-throttle-ratio ({values['contribution_throttle_ratio']})")
    if values["intent_expire_seconds"] <= values["intent_hold_seconds"]:
        raise ConfigError(
            "hive-intent-expire-seconds",
            f"{values['intent_expire_seconds']} must exceed hive-intent-hold-seconds "
            f"({values['intent_hold_seconds']})")


    if values["saturation_release_pct"] >= values["saturation_pct"]:
        raise ConfigError(
            "hive-saturation-release-pct",
            f"{values['saturation_release_pct']} must be below hive-saturation-pct "
            f"({values['saturation_pct']})")
    if values["planner_max_channel_sat"] < values["planner_min_channel_sat"]:
        raise ConfigError(
            "hive-planner-max-channel-sat",
            f"{values['planner_max_channel_sat']} must be at least "
            f"hive-planner-min-channel-sat ({values['planner_min_channel_sat']})")


def from_init(options: dict, lightning_dir: str) -> ConfigSnapshot:
    """Build the snapshot from init's `options` (unset options may be absent)."""
    unknown = sorted(set(options) - set(BY_NAME))
    if unknown:
        raise ConfigError(unknown[0], "not an option of cl-hive")
    values: dict[str, Any] = {"lightning_dir": lightning_dir}
    for opt in OPTIONS:
        raw = options.get(opt.name)
        if raw is None and opt.decimal:
            raw = opt.default
        values[opt.field] = opt.default if raw is None else coerce(opt, raw)
    db_path = values["db_path"] or "cl-hive.db"
    if db_path == "" or db_path.endswith(os.sep):
        raise ConfigError("hive-db-path", "expected a file name, got a directory")
    values["db_path"] = os.path.join(lightning_dir, os.path.expanduser(db_path))
    if values["log_file"] is not None:
        values["log_file"] = os.path.join(lightning_dir, os.path.expanduser(values["log_file"]))
    _check_joint(values)
    return ConfigSnapshot(**values)


def with_change(snapshot: ConfigSnapshot, name: str, raw: Any) -> ConfigSnapshot:
    """The snapshot after `setconfig name raw`, or ConfigError (the old one stays)."""
    opt = BY_NAME.get(name)
    if opt is None:
        raise ConfigError(name, "not an option of cl-hive")
    if not opt.dynamic:
        raise ConfigError(name, "cannot be changed while running; restart the plugin")
    if raw is None:
        raise ConfigError(name, f"a value is required: expected {opt.allowed()}")
    new = replace(snapshot, **{opt.field: coerce(opt, raw)})
    _check_joint(new.public())
    return new
