"""Chaos experiments: a register workload against the cluster's DynamoDB endpoints, faults on a
schedule, a heal, and a verdict from the recorded history (lost acknowledged writes, stale
strong reads, linearizability, unavailability, recovery, convergence).

    from chaos.experiment import Target, load_experiment, run_experiment
    report = run_experiment(load_experiment("az-isolation.yaml", short=True),
                            Target.from_data_dir(Path(".dynalab")), Path("out"))
"""
from chaos.experiment.history import HistoryEntry, read_history
from chaos.experiment.report import Report, summary
from chaos.experiment.runner import Target, run_experiment
from chaos.experiment.spec import (Experiment, ExperimentError, ScheduledFault, SteadyState,
                                   WorkloadSpec, load_experiment, parse_experiment)
from chaos.experiment.verdict import Verdict, judge

__all__ = [
    "Experiment", "ExperimentError", "HistoryEntry", "Report", "ScheduledFault", "SteadyState",
    "Target", "Verdict", "WorkloadSpec", "judge", "load_experiment", "parse_experiment",
    "read_history", "run_experiment", "summary",
]
