"""The recorder's window and the merging of snapshots across workers."""
from __future__ import annotations

from chaos.workload.results import op_result, second_sample
from chaos.workload.stats import Recorder, merge_snapshots


def _recorder() -> Recorder:
    # A run with 1 s warm-up and 3 s measured; "rmw-read" is a half, not an operation of the mix.
    return Recorder(("read", "rmw", "rmw-read"), warmup_s=1.0, end_s=4.0, top_level=("read", "rmw"))


def test_completions_split_into_warmup_window_and_drain() -> None:
    rec = _recorder()
    for t_s in (0.5, 1.0, 2.2, 3.99, 4.0, 4.5):
        rec.record("read", t_s, 1000, None, False)
    rec.record("rmw-read", 4.2, 900, None, False)  # a half after the end: not an operation
    assert rec.totals["read"].count == 3  # 1.0, 2.2, 3.99
    assert rec.outside_window == 3  # 0.5 (warm-up), 4.0 and 4.5 (drain)
    seconds = rec.take_seconds()
    assert [s for s, _ in seconds] == [0, 1, 2, 3]
    assert sum(per_op["read"].count for _, per_op in seconds) == 4  # the warm-up second included


def test_take_seconds_only_returns_finished_seconds_once() -> None:
    rec = _recorder()
    for t_s in (0.1, 1.1, 2.1):
        rec.record("rmw", t_s, 5000, "ConditionalCheckFailedException", False)
    assert [s for s, _ in rec.take_seconds(before=2)] == [0, 1]
    assert rec.take_seconds(before=2) == []
    assert [s for s, _ in rec.take_seconds()] == [2]


def test_merged_snapshots_add_up_counts_errors_and_latencies() -> None:
    workers = [_recorder(), _recorder()]
    for i, rec in enumerate(workers):
        for n in range(100):
            error = "ProvisionedThroughputExceededException" if n % 10 == 0 else None
            rec.record("read", 1.5, 1000 + i, error, False)
        rec.record("read", 2.0, 50_000, "ServerDisconnectedError", True)
    merged = merge_snapshots([rec.totals["read"].snapshot() for rec in workers])
    assert merged.count == 202
    assert merged.errors == {"ProvisionedThroughputExceededException": 20}
    assert merged.transport_errors == {"ServerDisconnectedError": 2}
    result = op_result("read", [rec.totals["read"].snapshot() for rec in workers], measured_s=2.0)
    assert result.ok + result.error_count == result.count == 202
    assert result.ops_per_s == 101.0
    assert 1000 <= result.latency.p50_us <= 1002  # merged from both workers
    assert 49_950 <= result.latency.max_us <= 50_050  # 3 significant digits


def test_second_sample_counts_only_operations_of_the_mix() -> None:
    rec = _recorder()
    rec.record("rmw", 1.2, 3000, None, False)
    rec.record("rmw-read", 1.2, 1000, None, False)
    rec.record("read", 1.3, 2000, "ThrottlingException", False)
    (second, per_op), = rec.take_seconds()
    sample = second_sample(second, False, {op: [snap] for op, snap in per_op.items()},
                           ("read", "rmw"))
    assert sample.ops_per_s == 2 and sample.errors == 1
    assert sample.ops == {"read": 1, "rmw": 1, "rmw-read": 1}
    assert 2990 <= sample.max_us <= 3010
