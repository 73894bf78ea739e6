"""A regtest chain of our own for real lightningd nodes (no bitcoind): see server.py and backend_plugin.py."""
