"""The global-tables replicator (docs/cluster.md, "Streams and global tables"): one process per
region, `python -m replication.replicator --data-dir DIR --region R`.

Modules: `changes` (records -> ReplicaApply changes, pure), `checkpoints` (per-destination
cursors, durable), `lag` (lag per region pair, pure), `peer` (the sending link), `service`
(the receiving side), `shipper` (one shard to one region), `backfill` (a new replica's copy),
`region` (the catalog and the node calls), `process` (what runs, kept in line with the catalog).
"""
