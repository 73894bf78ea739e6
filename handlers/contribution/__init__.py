"""The contribution ledger (seed Phase 5.2): who carries the fleet's traffic, counted from
settled forwards, and the throttle signal the bridge's fee policy reads."""
