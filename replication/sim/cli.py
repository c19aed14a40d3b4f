"""`dynalab sim raft ...` (seeded simulations) and `dynalab sim failover ...`."""
from __future__ import annotations

import argparse
import sys
import time

from replication.sim.faults import ALL_MIXES
from replication.sim.simulator import Simulation, SimResult
from replication.sim.variants import VARIANTS, build_config

DEFAULT_STEPS = 3000


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dynalab sim", description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    raft = sub.add_parser("raft", help="seeded simulations of a Raft group, with checkers")
    raft.add_argument("--seeds", type=int, default=100, help="how many seeds to run")
    raft.add_argument("--seed-start", type=int, default=0, help="first seed")
    raft.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                      help="events in the faulty phase of each run")
    raft.add_argument("--mix", default="all", choices=["all", *ALL_MIXES],
                      help="fault mix; 'all' rotates the default mixes over seeds")
    raft.add_argument("--unsafe", choices=sorted(VARIANTS),
                      help="run a deliberately unsafe variant (to see a checker catch it)")
    raft.add_argument("--nodes", type=int, help="replicas (default 3)")
    raft.add_argument("--verbose", "-v", action="store_true",
                      help="one line per run: trace hash, steps, ticks, counters")
    fail = sub.add_parser("failover", help="ticks from a leader crash to writes committing")
    fail.add_argument("--seeds", type=int, default=100)
    fail.add_argument("--seed-start", type=int, default=0)
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv[1:] if argv and argv[0] == "sim" else argv)
    if args.what == "failover":
        return _failover(args)
    return _raft(args)


def _raft(args: argparse.Namespace) -> int:
    failures: list[SimResult] = []
    steps = 0
    started = time.perf_counter()
    for seed in range(args.seed_start, args.seed_start + args.seeds):
        config = build_config(seed, args.mix, args.steps, args.unsafe, args.nodes)
        result = Simulation(config).run()
        steps += result.steps
        if args.verbose:
            counters = " ".join(f"{k}={v}" for k, v in result.stats)
            print(f"seed {seed} mix {result.mix} trace {result.trace_hash} steps {result.steps} "
                  f"ticks {result.ticks} {counters}")
        if not result.ok:
            failures.append(result)
    elapsed = time.perf_counter() - started
    count = sum(len(r.violations) for r in failures)
    print(f"{args.seeds} runs, {count} violations")
    for result in failures:
        for v in result.violations:
            print(f"seed {result.seed} ({result.mix}): {v.property}: {v.detail}")
        print(f"  replay: {_replay(args, result)}")
    if args.verbose:
        print(f"{steps} steps in {elapsed:.1f}s ({steps / max(elapsed, 1e-9):.0f} steps/s)")
    return 1 if failures else 0


def _replay(args: argparse.Namespace, result: SimResult) -> str:
    parts = ["dynalab sim raft --seeds 1", f"--seed-start {result.seed}",
             f"--steps {args.steps}", f"--mix {result.mix}"]
    if args.unsafe:
        parts.append(f"--unsafe {args.unsafe}")
    if args.nodes:
        parts.append(f"--nodes {args.nodes}")
    return " ".join(parts + ["--verbose"])


def _failover(args: argparse.Namespace) -> int:
    from replication.sim.failover import measure_failover, summarize

    samples = []
    missing = []
    for seed in range(args.seed_start, args.seed_start + args.seeds):
        sample = measure_failover(seed)
        if sample is None:
            missing.append(seed)
        else:
            samples.append(sample)
    if samples:
        summary = summarize(samples)
        print(f"{len(samples)} failovers (ticks from leader crash; election timeout "
              f"{build_config(0, 'calm', 1).raft.election_ticks} ticks):")
        for name in ("elected", "ready", "write"):
            print(f"  {name:8} median {summary[f'{name}_ticks_median']:6}  "
                  f"max {summary[f'{name}_ticks_max']:6}")
    if missing:
        print(f"no failover within the limit for seeds {missing}", file=sys.stderr)
        return 1
    return 0
