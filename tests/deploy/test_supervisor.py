"""The supervisor against small real child processes (TCP listeners on 127.0.0.1)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from deploy.supervisor import (
    ClusterRunningError, ProcessRecord, ProcessSpec, ProcessStatus, StartError, Supervisor,
    SupervisorError, TcpCheck,
)
from tests.deploy.conftest import NEVER_HEALTHY, gone, listener_spec, proc_state, python
from tests.waiting import wait_for

pytestmark = pytest.mark.cluster


def connectable(port: int) -> bool:
    return TcpCheck(port)()


def start_three(data_dir: Path, ports) -> tuple[Supervisor, dict[str, int]]:
    assigned = ports("n1", "n2", "r1")
    supervisor = Supervisor(data_dir, grace_s=2.0)
    supervisor.start([listener_spec("n1", assigned["n1"]), listener_spec("n2", assigned["n2"]),
                      listener_spec("r1", assigned["r1"], "router")], deadline_s=15)
    return supervisor, assigned


def test_start_makes_every_process_healthy_and_writes_state(data_dir: Path, ports) -> None:
    supervisor, assigned = start_three(data_dir, ports)
    state = json.loads((data_dir / "state.json").read_text())
    assert list(state["processes"]) == ["n1", "n2", "r1"]
    for name, rec in state["processes"].items():
        assert connectable(assigned[name])
        assert rec["pgid"] == rec["pid"] == os.getpgid(rec["pid"])  # its own process group
        assert os.getsid(rec["pid"]) == rec["pid"]  # and session: Ctrl-C does not reach it
        assert rec["ports"] == {"grpc": assigned[name]}
        assert rec["argv"][-1] == str(assigned[name]) and rec["start_ticks"] > 0
        assert proc_state(rec["pid"]) in ("R", "S")
        log = (data_dir / "logs" / f"{name}.log").read_text()
        assert log.startswith(f"--- dynalab: starting {name}")
        assert wait_for(lambda: f"listening on {assigned[name]}" in
                        (data_dir / "logs" / f"{name}.log").read_text())
    assert [s.state for s in supervisor.status()] == ["alive"] * 3
    assert state["processes"]["r1"]["kind"] == "router"
    supervisor.stop_all()


def test_refuses_to_start_over_a_running_cluster(data_dir: Path, ports) -> None:
    supervisor, assigned = start_three(data_dir, ports)
    pids = {s.name: s.pid for s in supervisor.status()}
    other = Supervisor(data_dir)  # as a second `dynalab up` would
    with pytest.raises(ClusterRunningError, match="already running"):
        other.start([listener_spec("n1", assigned["n1"])], deadline_s=5)
    assert {s.name: s.pid for s in supervisor.status()} == pids
    assert all(s.state == "alive" for s in supervisor.status())
    supervisor.stop_all()


def test_pause_and_resume_stop_and_continue_the_process(data_dir: Path, ports) -> None:
    supervisor, _ = start_three(data_dir, ports)
    pid = supervisor.records()["n2"].pid
    supervisor.pause("n2")
    assert proc_state(pid) == "T"
    assert {s.name: s.state for s in supervisor.status()}["n2"] == "paused"
    supervisor.resume("n2")
    assert proc_state(pid) in ("R", "S")
    assert {s.name: s.state for s in supervisor.status()}["n2"] == "alive"
    supervisor.stop_all()


def test_kill_then_restart_gives_a_new_healthy_process(data_dir: Path, ports) -> None:
    supervisor, assigned = start_three(data_dir, ports)
    old = supervisor.records()["n1"]
    supervisor.kill("n1")
    assert gone(old.pid)
    assert {s.name: s.state for s in supervisor.status()} == {"n1": "dead", "n2": "alive",
                                                              "r1": "alive"}
    with pytest.raises(SupervisorError, match="not running"):
        supervisor.pause("n1")
    new = supervisor.restart("n1")
    assert new.pid != old.pid and connectable(assigned["n1"])
    assert supervisor.records()["n1"].pid == new.pid  # state.json follows
    assert proc_state(new.pid) in ("R", "S")
    log = (data_dir / "logs" / "n1.log").read_text()
    assert log.count("--- dynalab: starting n1") == 2  # appended, the first run's output kept
    # Restart of a live process: stopped, then started again.
    again = supervisor.restart("n1")
    assert gone(new.pid) and again.pid != new.pid
    supervisor.stop_all()


def test_restart_from_another_supervisor_uses_the_kept_tcp_check(data_dir: Path, ports) -> None:
    supervisor, assigned = start_three(data_dir, ports)
    new = Supervisor(data_dir).restart("r1")  # as `dynalab restart r1` in another shell
    assert connectable(assigned["r1"]) and supervisor.records()["r1"].pid == new.pid
    supervisor.stop_all()


def test_down_leaves_nothing_running_and_keeps_the_data(data_dir: Path, ports) -> None:
    supervisor, _ = start_three(data_dir, ports)
    supervisor.pause("n1")  # a paused process must stop too (SIGTERM waits for SIGCONT)
    (data_dir / "n2-data").write_text("items")
    pids = [rec.pid for rec in supervisor.records().values()]
    supervisor.stop_all()
    assert all(gone(pid) for pid in pids)
    assert not (data_dir / "state.json").exists()
    assert (data_dir / "n2-data").read_text() == "items"
    assert (data_dir / "logs" / "n1.log").exists()
    assert supervisor.status() == []
    supervisor.stop_all()  # idempotent


def test_stop_escalates_to_sigkill_after_the_grace_period(data_dir: Path, ports) -> None:
    port = ports("stubborn")["stubborn"]
    supervisor = Supervisor(data_dir, grace_s=0.3)
    supervisor.start([listener_spec("stubborn", port, "node", "ignore-term")], deadline_s=10)
    pid = supervisor.records()["stubborn"].pid
    os.kill(pid, signal.SIGTERM)  # ignored, as it should be for this child
    assert not wait_for(lambda: gone(pid), 0.2)
    supervisor.stop_all()
    assert gone(pid)


def test_a_process_that_never_becomes_healthy_fails_the_start(data_dir: Path, ports) -> None:
    assigned = ports("good", "bad")
    supervisor = Supervisor(data_dir, grace_s=1.0)
    specs = [listener_spec("good", assigned["good"]),
             ProcessSpec("bad", "node", python(NEVER_HEALTHY), TcpCheck(assigned["bad"]))]
    with pytest.raises(StartError) as caught:
        supervisor.start(specs, deadline_s=1.5)
    assert caught.value.name == "bad"
    assert "did not become healthy within 1.5 s" in str(caught.value)
    assert "boom: cannot open the store" in caught.value.log_tail
    assert not connectable(assigned["good"])  # the healthy sibling was stopped too
    assert not (data_dir / "state.json").exists()
    assert supervisor.status() == []
    assert _no_child_of_ours_left()


def test_a_process_that_exits_at_once_fails_the_start_with_its_code(data_dir: Path) -> None:
    code = "import sys; print('config error: no such table', flush=True); sys.exit(3)"
    with pytest.raises(StartError, match="exited with code 3") as caught:
        Supervisor(data_dir).start([ProcessSpec("n1", "node", python(code), TcpCheck(1))],
                                   deadline_s=10)
    assert "config error: no such table" in caught.value.log_tail


def test_a_reused_pid_is_neither_trusted_nor_signalled(data_dir: Path, ports) -> None:
    supervisor, _ = start_three(data_dir, ports)
    records = supervisor.records()
    # Pretend n1's pid now belongs to another program: same pid, different start time.
    state = json.loads((data_dir / "state.json").read_text())
    state["processes"]["n1"]["start_ticks"] += 1
    (data_dir / "state.json").write_text(json.dumps(state))
    assert {s.name: s.state for s in supervisor.status()}["n1"] == "dead"
    with pytest.raises(SupervisorError, match="not running"):
        supervisor.kill("n1")
    supervisor.stop_all()
    assert proc_state(records["n1"].pid) in ("R", "S")  # untouched by down
    assert gone(records["n2"].pid) and gone(records["r1"].pid)
    os.killpg(records["n1"].pgid, signal.SIGKILL)  # ours after all: clean up
    assert wait_for(lambda: gone(records["n1"].pid))


def test_a_pid_running_another_command_line_is_not_ours(data_dir: Path, ports) -> None:
    supervisor, _ = start_three(data_dir, ports)
    rec = supervisor.records()["n2"]
    changed = ProcessRecord.from_json({**rec.to_json(), "argv": ["something", "else"]})
    assert Supervisor.state_of(rec) == "alive" and Supervisor.state_of(changed) == "dead"
    supervisor.stop_all()


def test_foreground_serve_reports_deaths_and_stops_everything(data_dir: Path, ports) -> None:
    supervisor, _ = start_three(data_dir, ports)
    pids = [rec.pid for rec in supervisor.records().values()]
    stop, died = threading.Event(), []
    thread = threading.Thread(target=supervisor.serve,
                              kwargs={"stop": stop, "poll_s": 0.05, "on_exit": died.append})
    thread.start()
    try:
        Supervisor(data_dir).kill("n2")
        assert wait_for(lambda: [s.name for s in died] == ["n2"])
        assert isinstance(died[0], ProcessStatus) and died[0].state == "dead"
    finally:
        stop.set()
        thread.join(timeout=15)
    assert not thread.is_alive()
    assert all(gone(pid) for pid in pids)


DRIVER = textwrap.dedent("""
    import sys, threading
    from pathlib import Path
    from deploy.supervisor import ProcessSpec, StartAborted, Supervisor, TcpCheck, stop_on_signals
    from tests.deploy.conftest import NEVER_HEALTHY, listener_spec, python
    data_dir, port, mode = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    supervisor = Supervisor(data_dir)
    specs = [listener_spec("n1", port)]
    if mode == "detached":
        supervisor.start(specs, deadline_s=15)
        sys.exit(0)
    if mode == "stuck":  # one process never becomes healthy: the start hangs until stopped
        specs.append(ProcessSpec("stuck", "node", python(NEVER_HEALTHY), TcpCheck(1)))
    with stop_on_signals(threading.Event()) as stop:  # as lifecycle.up does in the foreground
        try:
            supervisor.start(specs, deadline_s=60, stop=stop)
        except StartAborted:
            sys.exit(7)
        print("up", flush=True)
        supervisor.serve(stop, poll_s=0.05)
""")


def run_driver(data_dir: Path, port: int, mode: str) -> subprocess.Popen[str]:
    root = Path(__file__).resolve().parents[2]
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(data_dir), str(port), mode],
                            cwd=root, stdout=subprocess.PIPE, text=True, start_new_session=True)


def test_detached_children_outlive_the_command(data_dir: Path, ports) -> None:
    port = ports("n1")["n1"]
    driver = run_driver(data_dir, port, "detached")
    try:
        assert driver.wait(timeout=30) == 0
    finally:
        _end(driver)
    supervisor = Supervisor(data_dir)
    pid = supervisor.records()["n1"].pid
    assert supervisor.status()[0].state == "alive" and connectable(port)
    assert _ppid(pid) != driver.pid  # re-parented: the command that started it is gone
    supervisor.stop_all()  # a process that is not our child, stopped from state.json alone
    assert wait_for(lambda: gone(pid))


def test_foreground_mode_stops_everything_on_sigterm(data_dir: Path, ports) -> None:
    port = ports("n1")["n1"]
    driver = run_driver(data_dir, port, "foreground")
    try:
        assert driver.stdout is not None and driver.stdout.readline().strip() == "up"
        pid = Supervisor(data_dir).records()["n1"].pid
        assert connectable(port)
        driver.send_signal(signal.SIGTERM)  # what Ctrl-C (SIGINT) does too
        assert driver.wait(timeout=30) == 0
        assert gone(pid) and not (data_dir / "state.json").exists()
    finally:
        _end(driver)


def test_sigterm_while_starting_stops_what_was_started(data_dir: Path, ports) -> None:
    port = ports("n1")["n1"]
    driver = run_driver(data_dir, port, "stuck")
    try:
        # Both spawned and n1 healthy; "stuck" never will be.
        assert wait_for(lambda: _recorded(data_dir) == 2 and connectable(port), 30)
        pids = [rec.pid for rec in Supervisor(data_dir).records().values()]
        driver.send_signal(signal.SIGTERM)
        assert driver.wait(timeout=30) == 7
        assert all(gone(pid) for pid in pids) and not (data_dir / "state.json").exists()
    finally:
        _end(driver)


def _recorded(data_dir: Path) -> int:
    try:
        return len(Supervisor(data_dir).records())
    except (OSError, ValueError):
        return 0


def _end(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    if proc.stdout:
        proc.stdout.close()


def _ppid(pid: int) -> int:
    data = Path(f"/proc/{pid}/stat").read_text()
    return int(data[data.rindex(")") + 2:].split()[1])


def _no_child_of_ours_left() -> bool:
    """No live process whose parent is this test process and whose group is its own (the
    supervisor's children), i.e. nothing the failed start left behind."""
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                data = Path(f"/proc/{entry}/stat").read_text()
            except FileNotFoundError:
                continue
            fields = data[data.rindex(")") + 2:].split()
            if int(fields[1]) == me and fields[0] not in "ZX" and int(fields[2]) == int(entry):
                return False
    return True


def test_tcp_check_is_false_on_a_closed_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        assert not TcpCheck(port)()
