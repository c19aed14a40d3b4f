from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pytest

if TYPE_CHECKING:
    from tests.e2e.cluster import Cluster

# gRPC's C core logs every GOAWAY of a closing peer at INFO; tests kill peers on purpose.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator["Cluster"]:
    """A one-region cluster of the test's own, for tests that kill or restart processes."""
    from tests.e2e.cluster import ONE_REGION, running_cluster

    with running_cluster(tmp_path / "data", ONE_REGION.format(vnodes=4)) as started:
        yield started
