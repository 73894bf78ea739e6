"""Seed Phase 2: the HiveMap, each member's signed state shared by gossip with anti-entropy
(`gossip`), and its pure rules (`rules`: fleet hash, thresholds, chunking). Imports the
frame, the wire and membership."""
