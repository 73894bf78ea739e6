"""Membership governance: promotion by vouches, bans and unbans by votes, leaving, and the
membership anti-entropy that carries their proofs to every node."""
