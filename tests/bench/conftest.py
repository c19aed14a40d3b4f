"""Fixtures for the bench tests: the fake DynamoDB server as a process of its own.

A separate process (not a thread) so the server and the bench's parent do not share a GIL, the
same as against a real endpoint. Started on 127.0.0.1 with port 0; ended by its PID.
"""
from __future__ import annotations

import json
import selectors
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
_START_WAIT_S = 30.0


@dataclass(frozen=True)
class FakeServer:
    process: subprocess.Popen[str]
    endpoint: str

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.endpoint}/_stats", timeout=10) as answer:
            return json.loads(answer.read())


def _read_port(process: subprocess.Popen[str]) -> int:
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + _START_WAIT_S
    while time.monotonic() < deadline:
        if selector.select(timeout=0.5):
            line = process.stdout.readline()
            if line.startswith("PORT "):
                return int(line.split()[1])
            if not line:
                break
        if process.poll() is not None:
            break
    raise RuntimeError("fake DynamoDB server did not start")


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    if process.stdout is not None:
        process.stdout.close()


@pytest.fixture
def fake_server() -> Iterator[Callable[..., FakeServer]]:
    """start(*args) -> FakeServer; args go to `python -m tests.bench.fake_dynamodb`."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> FakeServer:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.fake_dynamodb", "--port", "0", *args],
            cwd=REPO, stdout=subprocess.PIPE, text=True)
        started.append(process)
        return FakeServer(process, f"http://127.0.0.1:{_read_port(process)}")

    yield start
    for process in started:
        _stop(process)
