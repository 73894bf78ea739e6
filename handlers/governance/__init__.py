"""Governance (seed Phase 7): every action cl-hive would take on its own initiative is a
pending_action, decided by the governance mode (advisor, autonomous, oracle)."""
