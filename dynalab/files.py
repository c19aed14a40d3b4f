"""Writing the small files of a data dir (plans, state, checkpoints, fault records) so that a
reader in another process never sees half of one. Here, in the shared core, because every
process kind writes such files and node/, router/ and replication/ may only import dynalab/."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["atomic_write_text"]


def atomic_write_text(path: Path, text: str, *, durable: bool = False) -> None:
    """Write-then-rename (the folder is created if missing): a reader, or the writer after a
    crash, sees the old file or the new one, never half of one. `durable`: the file is fsynced
    before the rename and the folder after it, so the new content also survives a power cut once
    this returns (the rename itself is durable only once the directory entry is)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # per writer: no shared temp file
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if durable:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
