"""Every checker can fail: each deliberately unsafe variant is caught by the checker meant for
it, within a bounded number of seeds of the fault mix that makes its hazard likely."""
from __future__ import annotations

import pytest

from replication.raft import RaftConfig
from replication.sim.faults import ALL_MIXES
from replication.sim.simulator import SimConfig, Simulation
from replication.sim.variants import VARIANTS, build_config

MAX_SEEDS = 150


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_unsafe_variant_is_caught(name: str) -> None:
    variant = VARIANTS[name]
    seen: set[str] = set()
    for seed in range(MAX_SEEDS):
        result = Simulation(build_config(seed, variant.mix, 3000, name)).run()
        seen |= {v.property for v in result.violations}
        if variant.expect in seen:
            return
    pytest.fail(f"{name}: no {variant.expect} in {MAX_SEEDS} seeds of {variant.mix} "
                f"(saw {sorted(seen)})")


def test_the_targeted_mixes_are_safe_without_the_switch() -> None:
    """The hazard comes from the switch, not from the mix: the same seeds pass without it."""
    for mix in ("figure8", "lease-stress", "lease-idle"):
        for seed in range(40):
            result = Simulation(build_config(seed, mix, 3000)).run()
            assert result.ok, (mix, seed, result.violations)


def test_the_drift_mix_is_safe_within_the_bound() -> None:
    """Same skews and isolations as drift-beyond, with drift inside RaftConfig's bound."""
    within = ALL_MIXES["drift-beyond"].with_(drift=None)
    for seed in range(40):
        config = SimConfig(seed=seed, steps=3000, mix=within, raft=RaftConfig())
        result = Simulation(config).run()
        assert result.ok, (seed, result.violations)
