"""Per-destination stream checkpoints of a replicator, kept across kill -9.

For each destination region, table id and shard: the seq of the last record the destination has
acknowledged. Updates land in memory at once (`advance`, which marks the store `dirty` and calls
`on_dirty`) and reach the disk whole on `flush`, by write-temp + fsync + rename + fsync of the
directory: a crash leaves the previous file or the new one, never a torn one. When to flush is
the replicator's (process.py: `checkpoint_flush_ms` after a cursor moves, and on a clean stop).
After a crash the replicator resumes from the file and re-ships at most the acknowledged records
of one flush delay, which LWW makes harmless; it never skips one, because a seq is advanced only
after its ack.

Seqs are the zero-padded decimal strings of docs/cluster.md, so string order is log order;
`advance` refuses to move a cursor backwards (a late duplicate ack must not undo progress).

File: `{"format": 1, "cursors": {dest: {table_id: {shard: seq}}}}`.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable

from dynalab.files import atomic_write_text

__all__ = ["CheckpointStore", "CheckpointError", "FORMAT"]

log = logging.getLogger(__name__)

FORMAT = 1
Cursors = dict[str, dict[str, dict[str, str]]]


class CheckpointError(RuntimeError):
    """The checkpoint file exists but cannot be read: refusing to start over silently."""


class CheckpointStore:
    def __init__(self, path: Path, on_dirty: Callable[[], None] = lambda: None) -> None:
        self._path = Path(path)
        self._on_dirty = on_dirty  # told on every change (the flusher waits for one)
        self._cursors: Cursors = _load(self._path)
        self._dirty = False

    @property
    def path(self) -> Path:
        return self._path

    @property
    def dirty(self) -> bool:
        return self._dirty

    def get(self, dest: str, table_id: str, shard: str) -> str | None:
        """The last acknowledged seq, or None: start from the trim horizon."""
        return self._cursors.get(dest, {}).get(table_id, {}).get(shard)

    def advance(self, dest: str, table_id: str, shard: str, seq: str) -> None:
        shards = self._cursors.setdefault(dest, {}).setdefault(table_id, {})
        current = shards.get(shard)
        if current is not None and _key(seq) <= _key(current):
            return
        shards[shard] = seq
        self._dirty = True
        self._on_dirty()

    def forget(self, dest: str, table_id: str) -> None:
        """Drop the cursors of a (destination, table) that is no longer replicated: should it be
        replicated again, it starts from the trim horizon."""
        tables = self._cursors.get(dest)
        if tables is not None and tables.pop(table_id, None) is not None:
            self._dirty = True
            self._on_dirty()
            if not tables:
                del self._cursors[dest]

    def pairs(self) -> set[tuple[str, str]]:
        """Every (destination, table id) with a cursor."""
        return {(dest, table) for dest, tables in self._cursors.items() for table in tables}

    def flush(self) -> None:
        """Write the cursors if they changed since the last flush (an OSError leaves `dirty`
        set, so the caller may try again)."""
        if not self._dirty:
            return
        text = json.dumps({"format": FORMAT, "cursors": self._cursors}, sort_keys=True)
        atomic_write_text(self._path, text, durable=True)
        self._dirty = False


def _key(seq: str) -> tuple[int, str]:
    # Zero-padded seqs compare as strings; the length first keeps that true for any padding.
    return len(seq), seq


def _load(path: Path) -> Cursors:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read checkpoints {path}: {exc}") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT \
            or not isinstance(raw.get("cursors"), dict):
        raise CheckpointError(f"{path} is not a checkpoint file of format {FORMAT}")
    return {str(dest): {str(t): {str(s): str(q) for s, q in shards.items()}
                        for t, shards in tables.items()}
            for dest, tables in raw["cursors"].items()}
