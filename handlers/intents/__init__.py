"""Seed Phase 3: intent locks (`locks`: announce, hold, tie-break, commit, execute at most
once) and what a committed intent does (`executors`). Imports the frame, the wire and
membership."""
