#!/usr/bin/env python3
"""The smallest pyln plugin: the baseline of bench/manifest.py (what any pyln plugin costs
lightningd to start: the interpreter, pyln's import, one getmanifest)."""
from pyln.client import Plugin

Plugin().run()
