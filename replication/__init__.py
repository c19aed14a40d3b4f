"""Replication: the pure Raft core, its asyncio driver, the LogStore seam, the deterministic
simulator, and the global-tables replicator. Imports only `dynalab`."""
