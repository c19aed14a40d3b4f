"""Experiment files: parsing, the --short form, errors that name the entry, and that every
shipped experiment parses and expands against the chaos topology (both forms)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chaos.experiment import ExperimentError, load_experiment, parse_experiment
from chaos.experiment.cli import EXPERIMENTS_DIR, find_experiment
from chaos.experiment.schedule import expand
from chaos.faults import Kill, Skew
from deploy.topology_yaml import load_topology

SHIPPED = sorted(EXPERIMENTS_DIR.glob("*.yaml"))
CHAOS_TOPOLOGY = EXPERIMENTS_DIR / "topologies" / "chaos-two-regions.yaml"


def test_all_seven_experiments_are_shipped() -> None:
    assert {p.stem for p in SHIPPED} == {
        "leader-kill-loop", "az-outage", "az-isolation", "slow-follower", "flapping-link",
        "region-partition", "clock-skew-lww"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
@pytest.mark.parametrize("short", [False, True])
def test_shipped_experiments_parse_and_expand(path: Path, short: bool) -> None:
    experiment = load_experiment(path, short=short)
    topology = load_topology(CHAOS_TOPOLOGY)
    timed = expand(experiment.faults, topology, experiment.duration_s)
    assert timed, "every experiment injects something"
    assert all(t.at_s < experiment.duration_s for t in timed)
    assert all(t.until_s is None or t.until_s <= experiment.duration_s for t in timed)
    if short:
        assert experiment.duration_s <= 20
    needs_global = path.stem in ("region-partition", "clock-skew-lww")
    assert ("global_tables" in experiment.requires) == needs_global


def test_short_form_overrides_and_merges() -> None:
    raw = {"name": "x", "duration_s": 100,
           "workload": {"keys": 5, "rate_ops_s": 100, "mix": {"read": 1, "write": 1}},
           "faults": [{"at_s": 50, "fault": "kill", "args": {"process": "use1-a1"}}],
           "short": {"duration_s": 10, "workload": {"rate_ops_s": 20},
                     "faults": [{"at_s": 2, "fault": "kill", "args": {"process": "use1-b1"}}]}}
    long, short = parse_experiment(raw), parse_experiment(raw, short=True)
    assert (long.duration_s, long.workload.rate_ops_s, long.faults[0].args) == \
        (100, 100, {"process": "use1-a1"})
    assert (short.duration_s, short.workload.rate_ops_s, short.workload.keys) == (10, 20, 5)
    assert short.faults[0].args == {"process": "use1-b1"} and short.short


def test_repeat_and_cycle_expand_in_order() -> None:
    experiment = parse_experiment({
        "duration_s": 30, "faults": [
            {"at_s": 2, "fault": "kill", "duration_s": 3, "cycle": {"process": "nodes:us-east-1"},
             "repeat": {"every_s": 10, "count": 5}},
            {"at_s": 1, "fault": "skew", "args": {"offset_ms": 100},
             "cycle": {"node": ["euw1-a1", "euw1-b1"]}, "repeat": {"every_s": 1, "count": 2}}]})
    timed = expand(experiment.faults, load_topology(CHAOS_TOPOLOGY), experiment.duration_s)
    assert [(t.at_s, t.until_s, t.fault) for t in timed] == [
        (1, None, Skew("euw1-a1", 100)), (2, 5, Kill("use1-a1")), (2, None, Skew("euw1-b1", 100)),
        (12, 15, Kill("use1-b1")), (22, 25, Kill("use1-c1"))]  # the 4th, at 32 s, is past the end


@pytest.mark.parametrize("raw,message", [
    ({"duration_s": 10, "wat": 1}, "unknown key"),
    ({"workload": {"mix": {"read": 1, "delete": 1}}}, "mix takes"),
    ({"workload": {"consistency": "sometimes"}}, "strong or eventual"),
    ({"duration_s": 10, "faults": [{"fault": "kill"}]}, r"faults\[0\] needs"),
    ({"duration_s": 10, "faults": [{"at_s": 12, "fault": "kill"}]}, "not before the end"),
    ({"faults": [{"at_s": 1, "fault": "kill", "repeat": {"count": 3}}]}, "every_s"),
    ({"steady_state": {"max_error_rate": 2}}, r"\[0, 1\]"),
])
def test_invalid_experiments_say_what_is_wrong(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ExperimentError, match=message):
        parse_experiment(raw)


def test_unknown_fault_kinds_and_places_fail_before_the_run() -> None:
    topology = load_topology(CHAOS_TOPOLOGY)
    bad_kind = parse_experiment({"faults": [{"at_s": 1, "fault": "meteor"}]})
    with pytest.raises(Exception, match="unknown fault 'meteor'"):
        expand(bad_kind.faults, topology, bad_kind.duration_s)
    bad_az = parse_experiment({"faults": [{"at_s": 1, "fault": "isolate-az",
                                           "args": {"az": "mars-1a"}}]})
    with pytest.raises(Exception, match="not an AZ or region"):
        expand(bad_az.faults, topology, bad_az.duration_s)


def test_find_experiment_by_name_or_path(tmp_path: Path) -> None:
    assert find_experiment("az-outage") == EXPERIMENTS_DIR / "az-outage.yaml"
    own = tmp_path / "mine.yaml"
    own.write_text("name: mine\n")
    assert find_experiment(str(own)) == own
    with pytest.raises(ExperimentError, match="shipped ones"):
        find_experiment("no-such-thing")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ExperimentError, match=r"(?s)bad.yaml: .*line 1"):
        load_experiment(bad)
