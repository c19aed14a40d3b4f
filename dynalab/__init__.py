"""dynalab's shared pure core: attribute values and items, key encoding, DynamoDB errors, the
expression language, the topology model, the ring and replica placement.

This package imports none of the others (proto, replication, node, router, deploy, chaos);
`dynalab.cli` is the one exception and imports them lazily, per command.
"""
__version__ = "0.1.0"
