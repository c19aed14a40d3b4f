"""`dynalab bench`: a YCSB-style load generator for any DynamoDB endpoint
(dynalab, DynamoDB Local, moto, dynalite, or real DynamoDB with --sign).

    dynalab bench --endpoint http://127.0.0.1:8000 --workload A --load --records 100000 \\
        --duration 30 --warmup 5 --workers 2 --connections 64 --json out.json --png out.png

The engine lives in chaos.workload (programmatic API: run_benchmark(BenchSettings(...))).
"""
from __future__ import annotations

import argparse
import os
import sys

from chaos.workload import (WORKLOADS, BenchError, BenchResult, BenchSettings, SecondSample,
                            TableError, format_progress, format_table, run_benchmark, write_json,
                            write_png)
from chaos.workload.keys import DISTRIBUTIONS

__all__ = ["main", "parse_settings"]


def _parser() -> argparse.ArgumentParser:
    workloads = "\n".join(f"  {w.name:<4s} {w.description}" for w in WORKLOADS.values())
    p = argparse.ArgumentParser(
        prog="dynalab bench", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"workloads:\n{workloads}\n\nRequests are not retried: throttles, timeouts and "
               "disconnects are counted as errors.\nWith --rate, latency counts from each "
               "operation's intended start (no coordinated omission).")
    p.add_argument("--endpoint", help="DynamoDB endpoint URL (default with --sign: the AWS one "
                   "for --region)")
    p.add_argument("--region", default=os.environ.get("AWS_REGION")
                   or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")
    p.add_argument("--table", default="dynalab-bench")
    p.add_argument("--workload", default="A", help=f"one of {', '.join(WORKLOADS)} (or put-only)")
    p.add_argument("--distribution", choices=DISTRIBUTIONS,
                   help="key choice (default: the workload's: zipfian; latest for D; "
                        "uniform for put)")
    p.add_argument("--records", type=int, default=10_000, help="record count (default 10000)")
    p.add_argument("--item-size", type=int, default=1024, metavar="BYTES")
    p.add_argument("--consistent-read", action="store_true")
    p.add_argument("--rate", type=float, metavar="OPS/S",
                   help="target rate over all workers (default: as fast as possible)")
    p.add_argument("--duration", type=float, default=10.0, metavar="S",
                   help="measured seconds (0: only --load)")
    p.add_argument("--warmup", type=float, default=0.0, metavar="S")
    p.add_argument("--workers", type=int, default=1, help="load-generating processes")
    p.add_argument("--connections", type=int, default=32, help="per worker: requests in flight")
    p.add_argument("--load", action="store_true", help="insert --records items before the run")
    p.add_argument("--no-create", action="store_true", help="fail instead of creating the table")
    p.add_argument("--query-items", type=int, default=25,
                   help="workload E: items per partition key and longest Query (default 25)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S", help="per request")
    p.add_argument("--sign", action="store_true",
                   help="real SigV4 signatures (real DynamoDB; slower)")
    p.add_argument("--seed", type=int)
    p.add_argument("--json", metavar="FILE", help="write the full result as JSON")
    p.add_argument("--png", metavar="FILE", help="plot throughput and p99 per second")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    return p


def parse_settings(args: argparse.Namespace) -> BenchSettings:
    endpoint = args.endpoint
    if endpoint is None:
        if not args.sign:
            raise ValueError("--endpoint is required (or --sign for real DynamoDB)")
        endpoint = f"https://dynamodb.{args.region}.amazonaws.com"
    return BenchSettings(
        endpoint=endpoint, region=args.region, table=args.table, workload=args.workload,
        distribution=args.distribution, records=args.records, item_size_bytes=args.item_size,
        consistent_read=args.consistent_read, rate_ops_s=args.rate, duration_s=args.duration,
        warmup_s=args.warmup, workers=args.workers, connections=args.connections, load=args.load,
        create_table=not args.no_create, seed=args.seed, sign=args.sign, timeout_s=args.timeout,
        query_items=args.query_items)


def _print_progress(phase: str, sample: SecondSample) -> None:
    print(format_progress(phase, sample), file=sys.stderr, flush=True)


def _write_outputs(result: BenchResult, args: argparse.Namespace) -> None:
    if args.json:
        write_json(result, args.json)
        print(f"wrote {args.json}")
    if args.png and (result.run or result.load):
        write_png(result, args.png)
        print(f"wrote {args.png}")


def main(argv: list[str]) -> int:
    """argv[0] is "bench" (as dynalab.cli passes it)."""
    parser = _parser()
    args = parser.parse_args(argv[1:])
    try:
        settings = parse_settings(args)
    except ValueError as exc:
        parser.error(str(exc))  # exits with status 2
    try:
        result = run_benchmark(settings, None if args.quiet else _print_progress)
    except (BenchError, TableError, RuntimeError) as exc:
        print(f"dynalab bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dynalab bench: interrupted", file=sys.stderr)
        return 130
    if result.table_created and not settings.load:
        print(f"note: table {settings.table!r} was just created and is empty; add --load",
              file=sys.stderr)
    print(format_table(result))
    _write_outputs(result, args)
    return 0
