"""`dynalab up|down|status|kill|pause|resume|restart|wipe`: argument parsing and printing only;
the work is in deploy/lifecycle.py and deploy/supervisor.py."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from dynalab.links import read_active_faults
from dynalab.topology import TopologyError

from deploy import lifecycle
from deploy.specs import build_specs
from deploy.supervisor import SupervisorError

__all__ = ["main", "DEFAULT_DATA_DIR"]

DEFAULT_DATA_DIR = Path(".dynalab")


def main(argv: list[str]) -> int:
    command, rest = argv[0], argv[1:]
    parser = _parser(command)
    args = parser.parse_args(rest)
    try:
        return _run(command, args)
    except (lifecycle.LifecycleError, SupervisorError, TopologyError) as error:
        print(f"dynalab {command}: {error}", file=sys.stderr)
        return 1


def _parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"dynalab {command}")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help="where the cluster keeps its data, logs and cluster.json "
                             "(default: .dynalab)")
    if command == "up":
        parser.add_argument("--config", type=Path, help="topology YAML (default: the data dir's "
                            "kept topology, else two regions of three AZs)")
        parser.add_argument("--detach", action="store_true",
                            help="return once the cluster is healthy and leave it running")
        parser.add_argument("--deadline-s", type=float, default=60.0,
                            help="how long processes get to become healthy")
    elif command == "status":
        parser.add_argument("--json", action="store_true", help="machine-readable output")
    elif command in ("kill", "pause", "resume", "restart"):
        parser.add_argument("name", help="process name (node, router, ... id; see dynalab status)")
    return parser


def _run(command: str, args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir
    if command == "up":
        topology = lifecycle.prepare(data_dir, args.config)
        lifecycle.up(data_dir, topology, build_specs, detach=args.detach,
                     deadline_s=args.deadline_s, on_ready=lambda info: _print_ready(info, args))
        if not args.detach:
            print("dynalab: cluster stopped (data kept in "
                  f"{data_dir}; `dynalab up` brings it back)")
        return 0
    if command == "status":
        text = _with_faults(lifecycle.status(data_dir, as_json=args.json), data_dir, args.json)
        print(_with_replication(text, data_dir, args.json))
    elif command == "down":
        print(lifecycle.down(data_dir))
    elif command == "wipe":
        print(lifecycle.wipe(data_dir))
    else:
        action = getattr(lifecycle, command)
        print(action(data_dir, args.name))
    return 0


def _with_faults(text: str, data_dir: Path, as_json: bool) -> str:
    """The status plus the faults `dynalab chaos` has applied and not undone."""
    faults = read_active_faults(data_dir)
    if as_json:
        return json.dumps({**json.loads(text), "faults": faults}, indent=2)
    if not faults:
        return text
    lines = [f"  {f['id']:<5} {f.get('description', f['kind'])}" for f in faults]
    return "\n".join([text, "", f"active faults ({len(faults)}; dynalab chaos heal undoes them):",
                      *lines])


def _with_replication(text: str, data_dir: Path, as_json: bool) -> str:
    """The status plus each replicator's lag per region pair (DATA_DIR/replication/REGION.json,
    docs/cluster.md "Lag file")."""
    reports = _replication_reports(data_dir)
    if as_json:
        return json.dumps({**json.loads(text), "replication": reports}, indent=2)
    if not reports:
        return text
    now_ms = time.time() * 1000
    lines = []
    for region, report in sorted(reports.items()):
        stale = now_ms - report.get("updated_ms", 0) > _STALE_MS
        for pair, view in sorted(report.get("pairs", {}).items()):
            lines.append(_pair_line(pair, view) + ("  (report is stale: replicator down?)"
                                                   if stale else ""))
    return "\n".join([text, "", "replication (lag per region pair):", *lines])


_STALE_MS = 5000


def _replication_reports(data_dir: Path) -> dict[str, Any]:
    reports: dict[str, Any] = {}
    for path in sorted((data_dir / "replication").glob("*.json")):
        try:
            reports[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # being replaced right now, or foreign: skip it
    return reports


def _pair_line(pair: str, view: dict[str, Any]) -> str:
    def ms(value: Any) -> str:
        return "-" if value is None else f"{value:.0f} ms"
    lag = view.get("apply_lag_ms") or {}
    more = "+" if view.get("more_unread") else ""
    return (f"  {pair:<24} pending {view.get('pending_records', 0)}{more:<1}  "
            f"oldest unapplied {ms(view.get('oldest_unapplied_age_ms')):>8}  "
            f"lag p50 {ms(lag.get('p50')):>8} p99 {ms(lag.get('p99')):>8}  "
            f"link {'up' if view.get('connected') else 'down'}")


def _print_ready(info: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"dynalab: cluster is up (data dir {info['data_dir']}; cluster.json there)")
    for name, region in info["regions"].items():
        print(f"  {name:<12} DynamoDB endpoint {region['endpoint_url']}")
    first_name, first = next(iter(info["regions"].items()))
    print("\nTry it (any credentials work):\n"
          "  import boto3\n"
          f"  ddb = boto3.client('dynamodb', endpoint_url='{first['endpoint_url']}', "
          f"region_name='{first_name}', aws_access_key_id='x', aws_secret_access_key='x')\n"
          "  print(ddb.list_tables())\n")
    if args.detach:
        print("Running in the background: `dynalab status`, `dynalab down`.")
    else:
        print("Ctrl-C stops the cluster (data is kept).", flush=True)
