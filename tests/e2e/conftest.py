from __future__ import annotations

from typing import Iterator

import pytest

from tests.e2e.cluster import ONE_REGION, Cluster, running_cluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One region (3 AZs x 1 node, one router), shared by the tests that do not break it."""
    with running_cluster(tmp_path_factory.mktemp("e2e") / "data",
                         ONE_REGION.format(vnodes=4)) as started:
        yield started

