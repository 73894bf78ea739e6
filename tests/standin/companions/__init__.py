"""Companion plugin stand-ins (cl-revenue-ops, CLBoss): real pyln plugin processes."""
