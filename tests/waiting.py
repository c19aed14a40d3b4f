"""Waiting for a condition in tests that run without an event loop: poll with a deadline."""
from __future__ import annotations

import time
from typing import Callable

__all__ = ["wait_for"]


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0,
             interval_s: float = 0.02) -> bool:
    """True as soon as `condition()` is; after `timeout_s`, its last answer."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval_s)
    return condition()
