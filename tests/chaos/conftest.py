"""Fixtures: a Toxiproxy-compatible server on its own thread, the toxiproxy-python client pointed
at it, and a TCP echo server to proxy to (all on 127.0.0.1, ephemeral ports)."""
from __future__ import annotations

import random
from typing import Iterator

import pytest
from toxiproxy import Toxiproxy

from chaos.toxiproxy import ServerThread
from tests.chaos.helpers import EchoServer


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def server_thread() -> Iterator[ServerThread]:
    server = ServerThread(port=0, rng=random.Random(20240611))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def toxiproxy(server_thread: ServerThread) -> Iterator[Toxiproxy]:
    client = Toxiproxy()
    client.update_api_consumer("127.0.0.1", server_thread.server.port)
    yield client
    client.destroy_all()
