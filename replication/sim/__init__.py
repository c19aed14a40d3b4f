"""The deterministic simulator for the Raft core: seeded world, fault mixes, checkers, CLI.

    result = Simulation(SimConfig(seed=7, mix=MIXES["chaos"])).run()
    result.violations, result.trace_hash
"""
from replication.sim.checkers import Violation
from replication.sim.faults import ALL_MIXES, MIXES, FaultMix
from replication.sim.simulator import SimConfig, SimResult, Simulation, run_seed

__all__ = ["ALL_MIXES", "MIXES", "FaultMix", "SimConfig", "SimResult", "Simulation",
           "Violation", "run_seed"]
