"""Seed Phases 1 and 5: the hive's identity and its members (`members`: genesis, invite
tickets, admission records, who is active) and the handshake that admits a node
(`handshake`). Imports the frame and the wire."""
