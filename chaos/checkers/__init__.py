"""Checkers that judge a run after the fact, usable on their own (no cluster needed):
linearizability of per-key register histories, and convergence of global tables across regions."""
from chaos.checkers.convergence import (
    ABSENT,
    CandidateWrite,
    ConvergenceReport,
    check_convergence,
    lww_winner,
)
from chaos.checkers.linearizability import (
    LinearizabilityResult,
    Op,
    Outcome,
    Violation,
    check_linearizable,
    check_register,
)

__all__ = [
    "ABSENT",
    "CandidateWrite",
    "ConvergenceReport",
    "LinearizabilityResult",
    "Op",
    "Outcome",
    "Violation",
    "check_convergence",
    "check_linearizable",
    "check_register",
    "lww_winner",
]
