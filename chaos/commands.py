"""`dynalab chaos ...`: break a running cluster on purpose, see what is broken, heal it.

    dynalab chaos isolate az us-east-1b [--direction both|in|out] [--mode off|blackhole]
    dynalab chaos isolate region eu-west-1
    dynalab chaos partition us-east-1a,us-east-1b us-east-1c
    dynalab chaos latency --from us-east-1 --to eu-west-1 --ms 100 [--jitter-ms 10] [--both-ways]
    dynalab chaos bandwidth --from us-east-1a --to us-east-1b --kbps 512
    dynalab chaos flap --from us-east-1a --to us-east-1c --period-ms 2000 --count 5
    dynalab chaos kill|pause|resume|restart PROCESS      (PROCESS: an id, or az:NAME = its nodes)
    dynalab chaos skew NODE --offset-ms 5000
    dynalab chaos undo FAULT_ID
    dynalab chaos heal
    dynalab chaos status [--json]

Network faults act on the connections processes in --from open to processes in --to (AZ or
region names; --to may also be a process id). Every fault but restart/resume/flap stays active
until `undo` or `heal`, recorded in DATA_DIR/faults/active.json (`dynalab status` lists them).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from chaos.faults import (Fault, FaultContext, FaultError, ToxiproxyError, active_faults,
                          apply_fault, fault_from_args, heal, undo_fault)
from chaos.faults.network import DIRECTIONS, MODES

__all__ = ["main"]

DEFAULT_DATA_DIR = Path(".dynalab")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dynalab chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: given after the subcommand it wins, not given it keeps the top-level value.
    common.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)
    _isolate_parsers(sub, common)
    partition = sub.add_parser("partition", parents=[common], help="cut links between groups")
    partition.add_argument("groups", nargs="+", help="comma-separated AZs (or regions) per group")
    partition.add_argument("--mode", choices=MODES, default="off")
    _link_parsers(sub, common)
    for name in ("kill", "pause", "resume", "restart"):
        process = sub.add_parser(name, parents=[common], help=f"{name} a process")
        process.add_argument("process", help="process id, or az:NAME for every node of an AZ")
    skew = sub.add_parser("skew", parents=[common], help="offset a node's wall clock")
    skew.add_argument("node")
    skew.add_argument("--offset-ms", type=int, required=True)
    undo = sub.add_parser("undo", parents=[common], help="undo one active fault")
    undo.add_argument("fault_id")
    sub.add_parser("heal", parents=[common], help="undo every fault")
    status = sub.add_parser("status", parents=[common], help="show active faults")
    status.add_argument("--json", action="store_true")
    return parser


def _isolate_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    isolate = sub.add_parser("isolate", parents=[common], help="cut an AZ or region off")
    isolate.add_argument("scope", choices=("az", "region"))
    isolate.add_argument("name")
    isolate.add_argument("--direction", choices=DIRECTIONS, default="both")
    isolate.add_argument("--mode", choices=MODES, default="off",
                         help="off: connections refused; blackhole: bytes vanish, calls hang")


def _link_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    link = argparse.ArgumentParser(add_help=False)
    link.add_argument("--from", dest="source", required=True, help="AZ or region")
    link.add_argument("--to", dest="target", required=True, help="AZ, region or process id")
    link.add_argument("--both-ways", action="store_true", help="also the calls from --to")
    latency = sub.add_parser("latency", parents=[common, link], help="add delay")
    latency.add_argument("--ms", type=int, required=True)
    latency.add_argument("--jitter-ms", type=int, default=0)
    bandwidth = sub.add_parser("bandwidth", parents=[common, link], help="limit throughput")
    bandwidth.add_argument("--kbps", type=int, required=True, help="kilobits per second")
    flap = sub.add_parser("flap", parents=[common, link], help="links down/up repeatedly")
    flap.add_argument("--period-ms", type=int, required=True)
    flap.add_argument("--count", type=int, required=True)


def fault_of(args: argparse.Namespace) -> Fault:
    """The fault a parsed fault command asks for."""
    command = args.command
    if command == "isolate":
        key = "az" if args.scope == "az" else "region"
        return fault_from_args(f"isolate-{args.scope}", {key: args.name, "direction":
                                                         args.direction, "mode": args.mode})
    if command == "partition":
        groups = [tuple(g for g in group.split(",") if g) for group in args.groups]
        return fault_from_args("partition", {"groups": groups, "mode": args.mode})
    if command in ("latency", "bandwidth", "flap"):
        link = {"source": args.source, "target": args.target, "both_ways": args.both_ways}
        extra = {"latency": lambda: {"ms": args.ms, "jitter_ms": args.jitter_ms},
                 "bandwidth": lambda: {"kbps": args.kbps},
                 "flap": lambda: {"period_ms": args.period_ms, "count": args.count}}[command]()
        return fault_from_args(command, {**link, **extra})
    if command == "skew":
        return fault_from_args("skew", {"node": args.node, "offset_ms": args.offset_ms})
    return fault_from_args(command, {"process": args.process})


def main(argv: list[str]) -> int:
    """argv[0] is the command name ("chaos"), as `dynalab` passes it."""
    args = _parser().parse_args(argv[1:])
    try:
        context = FaultContext.from_data_dir(args.data_dir)
        print(_run(context, args), flush=True)
    except (FaultError, ToxiproxyError) as error:
        print(f"dynalab chaos {args.command}: {error}", file=sys.stderr)
        return 1
    except Exception as error:
        if not _is_cluster_error(error):
            raise
        print(f"dynalab chaos {args.command}: {error}", file=sys.stderr)
        return 1
    return 0


def _is_cluster_error(error: Exception) -> bool:
    """Errors of the process faults (deploy's), whose message is what to print."""
    from deploy.lifecycle import LifecycleError
    from deploy.supervisor import SupervisorError
    return isinstance(error, LifecycleError | SupervisorError)


def _run(context: FaultContext, args: argparse.Namespace) -> str:
    if args.command == "heal":
        return heal(context)
    if args.command == "undo":
        return undo_fault(context, args.fault_id)
    if args.command == "status":
        return _status(context, args.json)
    applied = apply_fault(context, fault_of(args), progress=lambda line: print(line, flush=True))
    suffix = f"\nactive as {applied.id} (undo: dynalab chaos undo {applied.id}; " \
             f"or dynalab chaos heal)" if applied.id else ""
    return applied.message + suffix


def _status(context: FaultContext, as_json: bool) -> str:
    faults = active_faults(context)
    network = _network_view(context)
    if as_json:
        return json.dumps({"faults": [f.to_json() for f in faults], "network": network},
                          indent=2)
    now = time.time()
    lines = [f"{len(faults)} active fault(s)"]
    lines += [f"  {f.id:<5} {f.fault.describe()}  (for {now - f.since:.0f} s)" for f in faults]
    if network is None:
        lines.append("links: direct (chaos is off in this topology)")
    elif "error" in network:
        lines.append(f"links: {network['error']}")
    else:
        lines.append(f"links: {network['proxies']} proxies, {len(network['disabled'])} "
                     f"disabled, {network['fault_toxics']} fault toxics, "
                     f"{network['baseline_toxics']} standing latencies")
        lines += [f"  disabled {name}" for name in network["disabled"][:10]]
    return "\n".join(lines)


def _network_view(context: FaultContext) -> dict[str, Any] | None:
    if context.plan is None or context.api is None:
        return None
    try:
        proxies = context.api.proxies()
    except ToxiproxyError as error:
        return {"error": str(error)}
    names = {p.name for p in context.plan.proxies}
    toxics = [t["name"] for name, p in proxies.items() if name in names
              for t in p.get("toxics") or []]
    return {"proxies": len(names & proxies.keys()),
            "disabled": sorted(n for n in names & proxies.keys()
                               if not proxies[n].get("enabled", True)),
            "fault_toxics": sum(1 for t in toxics if not t.startswith("baseline")),
            "baseline_toxics": sum(1 for t in toxics if t.startswith("baseline"))}
