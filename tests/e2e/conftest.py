from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.e2e.cluster import ONE_REGION, Cluster, start_cluster, stop_cluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One region (3 AZs x 1 node, one router), shared by the tests that do not break it."""
    data_dir = tmp_path_factory.mktemp("e2e") / "data"
    started = start_cluster(data_dir, ONE_REGION.format(vnodes=4))
    try:
        yield started
    finally:
        stop_cluster(started)


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A cluster of the test's own, for tests that kill or restart processes."""
    started = start_cluster(tmp_path / "data", ONE_REGION.format(vnodes=4))
    try:
        yield started
    finally:
        stop_cluster(started)
