"""The `dynalab` command.

The one module of `dynalab/` that reaches into the other packages, and only lazily: each
subcommand lives in its own module with a `main(argv: list[str]) -> int`, imported only when that
subcommand runs, so `dynalab --help` stays fast and the pure core stays free of them.
"""
from __future__ import annotations

import importlib
import sys

# name -> (module with main(argv) -> int, one-line help). Add a command with one line here.
COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("deploy.commands", "start the cluster described by a topology"),
    "down": ("deploy.commands", "stop every process of the cluster (data is kept)"),
    "status": ("deploy.commands", "show the cluster's processes (--json for tools)"),
    "kill": ("deploy.commands", "kill -9 one process (dynalab kill NAME)"),
    "pause": ("deploy.commands", "SIGSTOP one process"),
    "resume": ("deploy.commands", "SIGCONT a paused process"),
    "restart": ("deploy.commands", "restart one process"),
    "wipe": ("deploy.commands", "delete a stopped cluster's data dir"),
    "sim": ("replication.sim.cli", "run seeded deterministic simulations (dynalab sim raft ...)"),
    "bench": ("chaos.bench", "YCSB-style load generator for any DynamoDB endpoint"),
    "toxiproxy": ("chaos.toxiproxy.cli", "run dynalab's Toxiproxy-compatible server on its own"),
    "chaos": ("chaos.commands", "inject faults: isolate, partition, latency, kill, skew, heal..."),
    "experiment": ("chaos.experiment.cli", "run a chaos experiment (YAML) and judge the result"),
    "demo": ("deploy.demo", "a guided tour of global tables across two regions (< 1 minute)"),
}


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: dynalab COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "`dynalab COMMAND --help` describes a command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"dynalab: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main([name, *rest]) or 0)


if __name__ == "__main__":
    sys.exit(main())
