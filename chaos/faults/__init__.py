"""Faults for `dynalab chaos` and the experiments: each a frozen settings dataclass registered
under a kind name (FAULTS); the engine applies, undoes and heals them and keeps
DATA_DIR/faults/active.json.

    context = FaultContext.from_data_dir(Path(".dynalab"))
    applied = apply_fault(context, IsolateAz("us-east-1b"))
    undo_fault(context, applied.id)   # or heal(context): undo everything
"""
from chaos.faults.api import ToxiproxyApi, ToxiproxyError
from chaos.faults.base import (FAULTS, Fault, FaultContext, FaultError, NetworkEffects,
                               NetworkFault, ProcessFault, ToxicSpec, fault_from_args, register)
from chaos.faults.engine import (ActiveFault, Applied, active_faults, apply_fault, heal,
                                 sync_network, undo_fault)
from chaos.faults.network import Bandwidth, Flap, IsolateAz, IsolateRegion, Latency, Partition
from chaos.faults.process import Kill, Pause, Restart, Resume, Skew, resolve_processes

__all__ = [
    "FAULTS", "ActiveFault", "Applied", "Bandwidth", "Fault", "FaultContext", "FaultError",
    "Flap", "IsolateAz", "IsolateRegion", "Kill", "Latency", "NetworkEffects", "NetworkFault",
    "Partition", "Pause", "ProcessFault", "Restart", "Resume", "Skew", "ToxicSpec",
    "ToxiproxyApi", "ToxiproxyError", "active_faults", "apply_fault", "fault_from_args", "heal",
    "register", "resolve_processes", "sync_network", "undo_fault",
]
