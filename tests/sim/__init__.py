"""A fleet of N hive nodes simulated in one process: real handlers, real SQLite, a manual
clock and a simulated network (`network.py`), formed by seeding (`fleet.py`), driven
through the scenarios the scale benchmark and its test share (`scenarios.py`)."""
