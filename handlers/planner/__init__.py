"""Seed Phase 6: the hive planner. Each cycle computes the fleet's share of every external
target (saturation, with hysteresis, told to each member's CLBoss), ranks expansion
candidates and assigns each open to the member with the most idle on-chain funds, the
same on every member (`rules`); reads the graph per node off the worker (`reader`); and
acts: saturation and the assignee's proposal (`apply`), driven by the tick (`cycle`).
Imports every wing below it (governance proposes its opens)."""
