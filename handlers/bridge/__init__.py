"""The paranoid bridge (seed Phase 4): cl-revenue-ops and CLBoss behind circuit breakers,
every long call on a small bounded pool with a timeout, its outcome back on the worker."""
