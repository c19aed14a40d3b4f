"""dynalab.files.atomic_write_text: whole files only, the folder made, no temp file left."""
from __future__ import annotations

from pathlib import Path

import pytest

from dynalab.files import atomic_write_text


@pytest.mark.parametrize("durable", [False, True])
def test_writes_replaces_and_leaves_no_temp_file(tmp_path: Path, durable: bool) -> None:
    path = tmp_path / "made" / "state.json"
    atomic_write_text(path, "first\n", durable=durable)
    atomic_write_text(path, "second\n", durable=durable)
    assert path.read_text(encoding="utf-8") == "second\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    atomic_write_text(path, "old\n")
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(path, "half \udc80 written\n")  # a lone surrogate cannot be encoded
    assert path.read_text(encoding="utf-8") == "old\n"
