"""dynalab.capacity: read and write capacity units as the DynamoDB Developer Guide bills them."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from dynalab.capacity import read_units, write_units

KB = 1024


@pytest.mark.parametrize("size, strong, eventual, transactional", [
    (0, 1.0, 0.5, 2.0),              # a missing item still costs the minimum
    (1, 1.0, 0.5, 2.0),
    (3500, 1.0, 0.5, 2.0),           # "reading a 3,500-byte item consumes the same as 4 KB"
    (4 * KB, 1.0, 0.5, 2.0),
    (4 * KB + 1, 2.0, 1.0, 4.0),
    (8 * KB, 2.0, 1.0, 4.0),         # "8 KB: 2 strongly consistent, 1 eventually, 4 transactional"
    (10 * KB, 3.0, 1.5, 6.0),        # "a 10 KB item is rounded up to 12 KB"
    (400 * KB, 100.0, 50.0, 200.0),
])
def test_read_units_examples(size: int, strong: float, eventual: float, transactional: float) -> None:
    assert read_units(size, consistent=True) == strong
    assert read_units(size, consistent=False) == eventual
    assert read_units(size, consistent=True, transactional=True) == transactional


@pytest.mark.parametrize("size, units", [
    (0, 1.0), (500, 1.0), (KB, 1.0), (KB + 1, 2.0), (1536, 2.0), (400 * KB, 400.0),
])
def test_write_units_examples(size: int, units: float) -> None:
    assert write_units(size) == units
    assert write_units(size, transactional=True) == 2 * units


def test_batch_items_are_rounded_one_by_one() -> None:
    # "BatchGetItem reads a 1.5 KB and a 6.5 KB item: DynamoDB calculates 12 KB, not 8 KB."
    batch = read_units(1536, consistent=True) + read_units(6656, consistent=True)
    assert batch == 3.0
    assert read_units(1536 + 6656, consistent=True) == 2.0


@given(st.integers(0, 10 * 400 * KB), st.integers(0, 400 * KB))
def test_units_cover_the_size_and_grow_with_it(size: int, extra: int) -> None:
    strong = read_units(size, consistent=True)
    assert strong * 4 * KB >= size and (strong - 1) * 4 * KB < max(size, 1)
    assert read_units(size, consistent=False) == strong / 2
    assert write_units(size) * KB >= size and (write_units(size) - 1) * KB < max(size, 1)
    assert read_units(size + extra, consistent=True) >= strong
    assert write_units(size + extra) >= write_units(size)
