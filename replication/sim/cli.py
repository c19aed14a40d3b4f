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
    fail.add_argument("--quiesced", action="store_true",
                      help="crash the leader of a quiesced group (clients idle until then)")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv[1:] if argv and argv[0] == "sim" else argv)
    if args.what == "failover":
        return _failover(args)
    return _raft(args)


def _raft(args: argparse.Namespace) -> int:
    failures: list[SimResult] = []
    steps = 0
    quiesced_runs = 0
    totals: dict[str, int] = {}
    started = time.perf_counter()
    for seed in range(args.seed_start, args.seed_start + args.seeds):
        config = build_config(seed, args.mix, args.steps, args.unsafe, args.nodes)
        result = Simulation(config).run()
        steps += result.steps
        for name, count in result.stats:
            totals[name] = totals.get(name, 0) + count
        quiesced_runs += any(name == "quiesced_leader" for name, _ in result.stats)
        if args.verbose:
            counters = " ".join(f"{k}={v}" for k, v in result.stats)
            print(f"seed {seed} mix {result.mix} trace {result.trace_hash} steps {result.steps} "
                  f"ticks {result.ticks} {counters}")
        if not result.ok:
            failures.append(result)
    elapsed = time.perf_counter() - started
    count = sum(len(r.violations) for r in failures)
    print(f"{args.seeds} runs, {count} violations")
    print(_quiescence_line(args.seeds, quiesced_runs, totals))
    for result in failures:
        for v in result.violations:
            print(f"seed {result.seed} ({result.mix}): {v.property}: {v.detail}")
        print(f"  replay: {_replay(args, result)}")
    if args.verbose:
        print(f"{steps} steps in {elapsed:.1f}s ({steps / max(elapsed, 1e-9):.0f} steps/s)")
    return 1 if failures else 0


def _quiescence_line(runs: int, quiesced_runs: int, totals: dict[str, int]) -> str:
    """How much the runs exercised quiescence (they only test it if it happens)."""
    t = totals.get
    return (f"quiescence: in {quiesced_runs} of {runs} runs; leaders quiesced "
            f"{t('quiesced_leader', 0)} times, followers {t('quiesced_follower', 0)}; woken by a "
            f"message {t('wakes', 0)}, by a client request {t('request_wakes', 0)}, because the "
            f"leader's node went silent {t('dead_leader_wakes', 0)} or restarted "
            f"{t('restarted_leader_wakes', 0)}; "
            f"{t('lease_reads', 0) + t('lease_reads_fast', 0)} lease reads")


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
        sample = measure_failover(seed, quiesced=args.quiesced)
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
