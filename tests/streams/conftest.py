from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.e2e.cluster import ONE_REGION, Cluster, running_cluster, start_cluster, stop_cluster


@pytest.fixture(scope="module")
def stream_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One region (3 AZs x 1 node, one router) with the default stream retention."""
    with running_cluster(tmp_path_factory.mktemp("streams") / "data",
                         ONE_REGION.format(vnodes=4)) as started:
        yield started


@pytest.fixture(scope="module")
def short_retention_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Nodes that trim change records after 2 s: the supervisor hands its environment to the
    processes it starts, so the variable only needs to be set while `dynalab up` runs."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DYNALAB_STREAM_RETENTION_S", "2")
        started = start_cluster(tmp_path_factory.mktemp("trim") / "data",
                                ONE_REGION.format(vnodes=2))
    try:
        yield started
    finally:
        stop_cluster(started)
