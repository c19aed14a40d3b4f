"""The `db` fixture: a node's StateDB on a fresh RocksDB, closed after the test. Test modules
that need it import it (`from tests.statedb_fixture import db`)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from node.logstore import RocksLogEngine
from node.statedb import COLUMN_FAMILIES, StateDB


@pytest.fixture
def db(tmp_path: Path) -> Iterator[StateDB]:
    engine = RocksLogEngine(tmp_path / "db", extra_column_families=COLUMN_FAMILIES)
    state = StateDB(engine)
    yield state
    state.close()
    engine.close()
