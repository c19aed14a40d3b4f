"""Capacity units consumed by reads and writes, as DynamoDB bills them.

Reads are billed in 4 KB units rounded up (a 3,500-byte item costs one unit, a 10 KB item three);
an eventually consistent read costs half, a transactional one double. Writes are billed in 1 KB
units rounded up, transactional writes double. Every request costs at least one unit (half for
an eventually consistent read), even for an item that does not exist.
Each item of a batch is rounded on its own: sum the units, never the sizes.
"""
from __future__ import annotations

__all__ = ["READ_UNIT_BYTES", "WRITE_UNIT_BYTES", "read_units", "write_units"]

READ_UNIT_BYTES = 4 * 1024
WRITE_UNIT_BYTES = 1024


def read_units(size_bytes: int, *, consistent: bool, transactional: bool = False) -> float:
    """Read capacity units for reading `size_bytes`: 4 KB units rounded up, at least one;
    eventually consistent reads cost half, transactional reads double."""
    units = float(_units(size_bytes, READ_UNIT_BYTES))
    if transactional:
        return 2 * units
    return units if consistent else units / 2


def write_units(size_bytes: int, *, transactional: bool = False) -> float:
    """Write capacity units for writing `size_bytes`: 1 KB units rounded up, at least one;
    transactional writes double."""
    units = float(_units(size_bytes, WRITE_UNIT_BYTES))
    return 2 * units if transactional else units


def _units(size_bytes: int, unit_bytes: int) -> int:
    return max(1, -(-size_bytes // unit_bytes))
