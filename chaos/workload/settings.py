"""What to run: the YCSB core workloads and the settings of one benchmark run."""
from __future__ import annotations

from dataclasses import dataclass

from chaos.workload.keys import DISTRIBUTIONS

__all__ = ["Workload", "WORKLOADS", "OPERATIONS", "BenchSettings", "workload_named"]

# Operation names as they appear in results. "rmw" is workload F's read-modify-write as one
# operation; its two halves are also recorded on their own as "rmw-read" and "rmw-update" (not in
# the totals, which count only the operations of the mix).
OPERATIONS: tuple[str, ...] = ("read", "update", "insert", "query", "rmw", "rmw-read",
                               "rmw-update", "put")


@dataclass(frozen=True)
class Workload:
    name: str
    mix: tuple[tuple[str, float], ...]  # (operation, share); shares sum to 1
    distribution: str  # the key chooser YCSB uses for this workload
    description: str

    @property
    def inserts(self) -> bool:
        return any(op == "insert" for op, _ in self.mix)

    @property
    def operations(self) -> tuple[str, ...]:
        """The operations of the mix (what the totals count)."""
        return tuple(op for op in OPERATIONS if op in dict(self.mix))

    @property
    def recorded_operations(self) -> tuple[str, ...]:
        """Everything with its own row: the mix, plus the halves of a read-modify-write."""
        names = set(self.operations)
        if "rmw" in names:
            names |= {"rmw-read", "rmw-update"}
        return tuple(op for op in OPERATIONS if op in names)


WORKLOADS: dict[str, Workload] = {w.name: w for w in (
    Workload("A", (("read", 0.5), ("update", 0.5)), "zipfian",
             "update heavy: 50% read, 50% update"),
    Workload("B", (("read", 0.95), ("update", 0.05)), "zipfian",
             "read mostly: 95% read, 5% update"),
    Workload("C", (("read", 1.0),), "zipfian", "read only"),
    Workload("D", (("read", 0.95), ("insert", 0.05)), "latest",
             "read latest: 95% read (skewed to recent inserts), 5% insert"),
    Workload("E", (("query", 0.95), ("insert", 0.05)), "zipfian",
             "short ranges: 95% Query of one partition key, 5% insert"),
    Workload("F", (("read", 0.5), ("rmw", 0.5)), "zipfian",
             "read-modify-write: 50% read, 50% GetItem + conditional UpdateItem on a version"),
    Workload("put", (("put", 1.0),), "uniform", "put only: 100% PutItem over the loaded keys"),
)}


def workload_named(name: str) -> Workload:
    key = {"put-only": "put", "putonly": "put"}.get(name.lower(), name.upper() if len(name) == 1
                                                     else name.lower())
    if key not in WORKLOADS:
        raise ValueError(f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)}")
    return WORKLOADS[key]


@dataclass(frozen=True)
class BenchSettings:
    """One benchmark run. Durations in seconds; rate_ops_s None means as fast as possible."""

    endpoint: str
    region: str = "us-east-1"
    table: str = "dynalab-bench"
    workload: str = "A"
    distribution: str | None = None  # None: the workload's own (see WORKLOADS)
    records: int = 10_000
    item_size_bytes: int = 1024
    consistent_read: bool = False
    rate_ops_s: float | None = None  # target over all workers
    duration_s: float = 10.0  # measured time, after the warm-up
    warmup_s: float = 0.0
    workers: int = 1  # processes
    connections: int = 32  # per worker: requests in flight
    load: bool = False  # insert `records` items before the run
    create_table: bool = True
    seed: int | None = None  # None: a random seed, recorded in the result
    sign: bool = False  # real SigV4 (real DynamoDB); otherwise a well-formed unchecked header
    timeout_s: float = 10.0  # per request
    query_items: int = 25  # workload E: items per partition key and the longest Query

    def __post_init__(self) -> None:
        workload_named(self.workload)
        if self.distribution is not None and self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"unknown distribution {self.distribution!r}")
        positive = {"records": self.records, "item_size_bytes": self.item_size_bytes,
                    "workers": self.workers, "connections": self.connections,
                    "timeout_s": self.timeout_s, "query_items": self.query_items}
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.duration_s < 0 or self.warmup_s < 0:
            raise ValueError("duration_s and warmup_s must not be negative")
        if self.rate_ops_s is not None and self.rate_ops_s <= 0:
            raise ValueError(f"rate_ops_s must be positive, got {self.rate_ops_s}")

    @property
    def spec(self) -> Workload:
        return workload_named(self.workload)

    @property
    def key_distribution(self) -> str:
        return self.distribution or self.spec.distribution

    @property
    def items_per_key(self) -> int:
        # Only E wants many items under one partition key; the others spread records over keys.
        return self.query_items if self.spec.name == "E" else 1
