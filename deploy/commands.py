"""`dynalab up|down|status|kill|pause|resume|restart|wipe`: argument parsing and printing only;
the work is in deploy/lifecycle.py and deploy/supervisor.py."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

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
        print(lifecycle.status(data_dir, as_json=args.json))
    elif command == "down":
        print(lifecycle.down(data_dir))
    elif command == "wipe":
        print(lifecycle.wipe(data_dir))
    else:
        action = getattr(lifecycle, command)
        print(action(data_dir, args.name))
    return 0


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
