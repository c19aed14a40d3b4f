"""Cross-region convergence of a global table.

Given each region's final contents (key -> item; a missing key is absent), report the keys on
which regions disagree. Given also the writes each key received (value or None for a delete,
timestamp, region), report the keys whose value somewhere is not the last-writer-wins winner:
the write with the greatest (timestamp, region), the region breaking timestamp ties as the
replicator does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Hashable, Iterable, Mapping

__all__ = [
    "ABSENT",
    "CandidateWrite",
    "ConvergenceReport",
    "Divergence",
    "LwwMismatch",
    "check_convergence",
    "lww_winner",
]


class _Absent:
    """The value of a key a region does not have."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()


@dataclass(frozen=True, slots=True)
class CandidateWrite:
    value: object  # the item written, or None for a delete
    timestamp: float | int
    region: str


@dataclass(frozen=True, slots=True)
class Divergence:
    key: Hashable
    values: Mapping[str, object]  # region -> item or ABSENT


@dataclass(frozen=True, slots=True)
class LwwMismatch:
    key: Hashable
    winner: CandidateWrite
    expected: object  # the winner's item, or ABSENT for a delete
    wrong: Mapping[str, object]  # region -> what it holds instead


@dataclass(frozen=True, slots=True)
class ConvergenceReport:
    divergent: tuple[Divergence, ...]
    not_lww: tuple[LwwMismatch, ...]
    keys_checked: int

    @property
    def ok(self) -> bool:
        return not self.divergent and not self.not_lww

    def summary(self) -> str:
        lines = [f"{self.keys_checked} keys: {len(self.divergent)} divergent, "
                 f"{len(self.not_lww)} not the last writer's value"]
        lines += [f"  differs {d.key!r}: {dict(d.values)!r}" for d in self.divergent]
        lines += [f"  not LWW {m.key!r}: expected {m.expected!r} (from {m.winner.region} at "
                  f"{m.winner.timestamp}), got {dict(m.wrong)!r}" for m in self.not_lww]
        return "\n".join(lines)


def _by_timestamp_then_region(write: CandidateWrite) -> tuple[float | int, str]:
    return write.timestamp, write.region


def lww_winner(
    writes: Iterable[CandidateWrite],
    order: Callable[[CandidateWrite], object] = _by_timestamp_then_region,
) -> CandidateWrite | None:
    return max(writes, key=order, default=None)  # type: ignore[arg-type]


def check_convergence(
    regions: Mapping[str, Mapping[Hashable, object]],
    candidates: Mapping[Hashable, Iterable[CandidateWrite]] | None = None,
    *,
    order: Callable[[CandidateWrite], object] = _by_timestamp_then_region,
) -> ConvergenceReport:
    """Compare every key present in any region (or among the candidates) across all regions."""
    candidates = candidates or {}
    keys = set(candidates).union(*(contents.keys() for contents in regions.values()))
    divergent: list[Divergence] = []
    not_lww: list[LwwMismatch] = []
    for key in sorted(keys, key=repr):  # repr: keys of mixed types still get a stable order
        values = {region: contents.get(key, ABSENT) for region, contents in regions.items()}
        if any(value != next(iter(values.values())) for value in values.values()):
            divergent.append(Divergence(key, values))
        winner = lww_winner(candidates.get(key, ()), order)
        if winner is not None:
            expected = ABSENT if winner.value is None else winner.value
            wrong = {region: value for region, value in values.items() if value != expected}
            if wrong:
                not_lww.append(LwwMismatch(key, winner, expected, wrong))
    return ConvergenceReport(tuple(divergent), tuple(not_lww), len(keys))
