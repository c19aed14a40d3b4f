"""`dynalab experiment run FILE [--data-dir D] [--out DIR] [--short]` and `dynalab experiment
list`: run a chaos experiment against the running cluster and judge it.

FILE is a path or the name of a shipped experiment (chaos/experiments/NAME.yaml). The report goes
to --out (default DATA_DIR/experiments/NAME-TIMESTAMP/): report.json, summary.txt, plot.png,
history.jsonl. Exit status 0 when the verdict passes (or the experiment is skipped because the
cluster lacks what it requires), 1 when it fails, 2 on a usage or setup error.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from chaos.experiment.runner import Target, run_experiment
from chaos.experiment.report import summary
from chaos.experiment.spec import ExperimentError, load_experiment
from chaos.faults import FaultError, ToxiproxyError
from chaos.workload.table import TableError

__all__ = ["EXPERIMENTS_DIR", "find_experiment", "main"]

EXPERIMENTS_DIR = Path(__file__).resolve().parent.parent / "experiments"


def find_experiment(name: str) -> Path:
    path = Path(name)
    if path.exists():
        return path
    shipped = EXPERIMENTS_DIR / f"{name.removesuffix('.yaml')}.yaml"
    if shipped.exists():
        return shipped
    raise ExperimentError(f"no experiment file {name!r} (shipped ones: "
                          f"{', '.join(p.stem for p in sorted(EXPERIMENTS_DIR.glob('*.yaml')))})")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dynalab experiment", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one experiment")
    run.add_argument("file", help="experiment YAML, or a shipped experiment's name")
    run.add_argument("--data-dir", type=Path, default=Path(".dynalab"))
    run.add_argument("--out", type=Path, help="report directory")
    run.add_argument("--short", action="store_true", help="the experiment's short form")
    run.add_argument("--quiet", action="store_true", help="no progress lines")
    sub.add_parser("list", help="the shipped experiments")
    return parser


def main(argv: list[str]) -> int:
    """argv[0] is the command name ("experiment"), as `dynalab` passes it."""
    args = _parser().parse_args(argv[1:])
    if args.command == "list":
        for path in sorted(EXPERIMENTS_DIR.glob("*.yaml")):
            experiment = load_experiment(path)
            needs = f" [requires {', '.join(experiment.requires)}]" if experiment.requires else ""
            first = experiment.description.split(". ")[0].split(": ")[0]
            print(f"{path.stem:<20} {first}{needs}")
        return 0
    try:
        experiment = load_experiment(find_experiment(args.file), short=args.short)
        target = Target.from_data_dir(args.data_dir)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = args.out or args.data_dir / "experiments" / f"{experiment.name}-{stamp}"
        report = run_experiment(experiment, target, out,
                                log=(lambda _: None) if args.quiet else print)
    except (ExperimentError, FaultError, ToxiproxyError, TableError) as error:
        print(f"dynalab experiment: {error}", file=sys.stderr)
        return 2
    print(summary(report))
    print(f"report: {out}")
    return 0 if report.ok else 1
