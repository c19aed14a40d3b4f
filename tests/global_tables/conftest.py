from __future__ import annotations

from typing import Iterator

import pytest

from tests.e2e.cluster import Cluster, start_cluster, stop_cluster
from tests.global_tables.gt import TWO_REGIONS


@pytest.fixture(scope="session")
def two_regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The default-like topology (us-east-1 and eu-west-1, 3 AZs x 1 node, a router and a
    replicator each), vnodes 4; shared by the global-tables tests (each uses its own tables,
    and any test that skews a clock or stops a process undoes it before it ends)."""
    data_dir = tmp_path_factory.mktemp("gt") / "data"
    started = start_cluster(data_dir, TWO_REGIONS.format(vnodes=4))
    try:
        yield started
    finally:
        stop_cluster(started)
