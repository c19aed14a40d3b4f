"""The data dir's inter-process lock (atomic writes: dynalab.files.atomic_write_text)."""
from __future__ import annotations

import contextlib
import fcntl
import time
from pathlib import Path
from typing import Iterator

__all__ = ["LockTimeout", "file_lock"]


class LockTimeout(RuntimeError):
    """Another dynalab command holds the data dir's lock for too long."""


@contextlib.contextmanager
def file_lock(path: Path, timeout_s: float = 120.0) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if missing). flock, not a pid file: the kernel
    drops it when the holder dies, so a crashed command never leaves the data dir locked."""
    deadline = time.monotonic() + timeout_s
    with open(path, "a+") as f:
        while True:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockTimeout(f"{path} is held by another dynalab command") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
