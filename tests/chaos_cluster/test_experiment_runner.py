"""The experiment runner's mechanics against an in-process DynamoDB double: history recording,
faults on schedule, report files and the verdict, including doubles that serve stale reads or
forget acknowledged writes, which the verdict must catch."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from chaos.experiment import Target, parse_experiment, read_history, run_experiment
from chaos.experiment import cli as experiment_cli
from chaos.faults import FaultContext
from deploy.specs import write_topology_json
from deploy.topology_yaml import DEFAULT_TOPOLOGY, load_topology
from tests.chaos_cluster.fake_register import FAKES, RegisterFake, serve

REGION = "us-east-1"


def _experiment(duration_s: float, faults: list[dict[str, Any]], **workload: Any) -> Any:
    return parse_experiment({
        "name": "mechanics", "description": "runner test", "duration_s": duration_s,
        "workload": {"keys": 8, "rate_ops_s": 100, "clients": 4, "regions": [REGION],
                     "mix": {"read": 0.5, "write": 0.4, "cas": 0.1}, "timeout_s": 2.0,
                     **workload},
        "steady_state": {"window_s": 0.5, "recovery_timeout_s": 10},
        "faults": faults})


@pytest.fixture
def fake_target(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Target,
                                                                                  RegisterFake]]:
    fake = RegisterFake(stale_every=getattr(request, "param", 0))
    FAKES["fake"] = fake
    # Faults on the double need no proxies: a context with the default topology and no plan.
    context = FaultContext(tmp_path / "data", load_topology(DEFAULT_TOPOLOGY), None, None)
    context.data_dir.mkdir()
    try:
        with serve(fake) as url:
            yield Target({REGION: url}, context), fake
    finally:
        FAKES.pop("fake", None)


def test_a_healthy_run_with_an_outage_passes_and_reports_everything(
        fake_target: tuple[Target, RegisterFake], tmp_path: Path) -> None:
    target, _ = fake_target
    experiment = _experiment(4.0, [{"at_s": 1.5, "fault": "fake-outage",
                                    "args": {"fake": "fake"}, "duration_s": 1.5}])
    out = tmp_path / "out"
    report = run_experiment(experiment, target, out, log=lambda _: None)

    assert sorted(p.name for p in out.iterdir()) == ["history.jsonl", "plot.png", "report.json",
                                                      "summary.txt"]
    assert (out / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    history = read_history(out / "history.jsonl")
    load = [e for e in history if not e.client.startswith("final-")]
    assert all(e.invoke_s <= e.complete_s for e in history)
    assert {e.kind for e in load} == {"read", "write", "cas"}
    event = report.events[0]
    assert event.applied_s is not None and event.undone_s is not None
    during = [e for e in load if event.applied_s + 0.1 < e.invoke_s < event.undone_s - 0.1]
    # Writes refused with 503 are unknown (they may have happened); reads simply failed.
    assert during and {(e.kind, e.outcome) for e in during} <= {
        ("read", "unknown"), ("write", "unknown"), ("cas", "unknown")}
    assert all(e.outcome == "ok" or e.error == "ConditionalCheckFailedException"
               for e in load if e.invoke_s < event.applied_s - 0.1)

    verdict = report.verdict
    assert verdict is not None and report.ok and verdict.linearizable
    assert not verdict.lost_writes and not verdict.stale_reads
    # The outage shows as an unavailability window around the fault's span.
    assert any(start <= event.applied_s + 0.2 and end >= event.undone_s - 0.2
               for start, end in verdict.unavailability)
    assert verdict.steady.before_ok and verdict.steady.recovered_at_s is not None
    finals = [e for e in history if e.client == f"final-{REGION}"]
    assert len(finals) == 8 and all(e.outcome == "ok" for e in finals)

    doc = json.loads((out / "report.json").read_text())
    assert doc["format"] == "dynalab-experiment/1" and doc["verdict"]["ok"] is True
    assert doc["timeline"]["faults"][0]["description"] == "outage of fake"
    assert max(doc["series"]["errors_per_s"]) > 0 and max(doc["series"]["ok_per_s"]) > 0
    assert "VERDICT: PASS" in (out / "summary.txt").read_text()


@pytest.mark.parametrize("fake_target", [4], indirect=True)
def test_stale_reads_are_caught(fake_target: tuple[Target, RegisterFake],
                                tmp_path: Path) -> None:
    target, _ = fake_target
    report = run_experiment(_experiment(2.5, [], keys=16), target, tmp_path / "out",
                            log=lambda _: None)
    verdict = report.verdict
    assert verdict is not None and not report.ok
    assert verdict.stale_reads and verdict.linearizable is False
    assert "VERDICT: FAIL" in (tmp_path / "out" / "summary.txt").read_text()


def test_forgotten_acknowledged_writes_are_caught(fake_target: tuple[Target, RegisterFake],
                                                  tmp_path: Path) -> None:
    target, _ = fake_target
    # Amnesia until the end of the run: the heal restores the store as it was at 1 s, so writes
    # acknowledged after that are gone unless rewritten during the short recovery.
    experiment = _experiment(2.5, [{"at_s": 1.0, "fault": "fake-amnesia",
                                    "args": {"fake": "fake"}}], keys=64,
                             mix={"read": 0.2, "write": 0.8})
    report = run_experiment(experiment, target, tmp_path / "out", log=lambda _: None)
    verdict = report.verdict
    assert verdict is not None and not report.ok
    assert verdict.lost_writes and verdict.linearizable is False
    assert all(1.0 <= e.invoke_s for e in verdict.lost_writes)


def test_an_experiment_needing_global_tables_is_skipped_without_them(
        fake_target: tuple[Target, RegisterFake], tmp_path: Path) -> None:
    target, _ = fake_target
    experiment = parse_experiment({"name": "gt", "requires": ["global_tables"],
                                   "duration_s": 2, "workload": {"regions": "all"}})
    report = run_experiment(experiment, target, tmp_path / "out", log=lambda _: None)
    assert report.status == "skipped" and report.ok and "two regions" in (report.reason or "")
    assert json.loads((tmp_path / "out" / "report.json").read_text())["status"] == "skipped"
    assert not (tmp_path / "out" / "plot.png").exists()
    # Two regions, but the endpoint has no UpdateTable ReplicaUpdates: skipped, saying why.
    url = target.endpoints[REGION]
    two = Target({REGION: url, "eu-west-1": url}, target.context)
    report = run_experiment(experiment, two, tmp_path / "out2", log=lambda _: None)
    assert report.status == "skipped" and "ReplicaUpdates failed" in (report.reason or "")


def test_the_cli_runs_a_file_against_a_data_dir(fake_target: tuple[Target, RegisterFake],
                                                tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    target, _ = fake_target
    data_dir = tmp_path / "cluster"
    data_dir.mkdir()
    (data_dir / "cluster.json").write_text(json.dumps(
        {"regions": {REGION: {"endpoint_url": target.endpoints[REGION]}}}))
    write_topology_json(load_topology(DEFAULT_TOPOLOGY), data_dir)
    assert "no replicator runs in us-east-1" in (
        Target.from_data_dir(data_dir).no_global_tables or "")
    spec = tmp_path / "quick.yaml"
    spec.write_text("name: quick\nduration_s: 30\nworkload: {keys: 4, rate_ops_s: 50, "
                    "clients: 2}\nsteady_state: {window_s: 0.5}\n"
                    "short: {duration_s: 1.5}\n")
    code = experiment_cli.main(["experiment", "run", str(spec), "--data-dir", str(data_dir),
                                "--out", str(tmp_path / "report"), "--short", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "experiment quick (short)" in out and "VERDICT: PASS" in out
    assert json.loads((tmp_path / "report" / "report.json").read_text())["experiment"][
        "duration_s"] == 1.5
