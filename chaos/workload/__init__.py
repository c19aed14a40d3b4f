"""The workload engine behind `dynalab bench` (and, later, the chaos experiments' load).

YCSB-style workloads against any DynamoDB endpoint, over HTTP/1.1 in worker processes:

    from chaos.workload import BenchSettings, run_benchmark
    result = run_benchmark(BenchSettings(endpoint="http://127.0.0.1:8000", workload="A",
                                         load=True, duration_s=10))
    result.run.total.ops_per_s, result.run.total.latency.p99_us

Pieces: `keys` (uniform / scrambled zipfian / latest choosers), `bodies` (pre-built DynamoDB JSON),
`auth` (botocore-shaped headers, optional real SigV4), `client` (lean keep-alive HTTP/1.1), `worker` (one process),
`runner` (phases), `results` and `report` (table, JSON, PNG).
"""
from chaos.workload.report import format_progress, format_table, write_json, write_png
from chaos.workload.results import (BenchResult, CpuUsage, LatencySummary, OpResult, PhaseResult,
                                    SecondSample)
from chaos.workload.runner import BenchError, ProgressCallback, run_benchmark
from chaos.workload.settings import WORKLOADS, BenchSettings, Workload
from chaos.workload.table import TableError

__all__ = [
    "BenchSettings", "Workload", "WORKLOADS",
    "run_benchmark", "ProgressCallback", "BenchError", "TableError",
    "BenchResult", "PhaseResult", "OpResult", "LatencySummary", "SecondSample", "CpuUsage",
    "format_progress", "format_table", "write_json", "write_png",
]
